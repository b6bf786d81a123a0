"""Optimizer-seed variance: a method optimized once per seed, scored on the same instances.

A multi-seed sweep (``seeds: [0, 1, 2]``) optimizes every cell once per optimizer seed on the same
evaluation instances. The report row of such a method shows the mean over seeds, the per-seed
means and their spread, with a *two-level* bootstrap interval: each replicate draws seeds with
replacement and instances (whole clusters where instances share a group) with replacement, the
same instances for every seed. The interval then holds optimizer variance as well as evaluation
noise — "a ceiling with error bars" — where a single-seed interval holds evaluation noise only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from helm_optimizer.errors import DataError
from helm_optimizer.report.resample import centred_p, chunks, cluster_weights, percentile_interval
from helm_optimizer.report.stats import DEFAULT_RESAMPLES, cluster_index

__all__ = ["SeedSummary", "TwoLevel", "seed_summary", "two_level_bootstrap"]


@dataclass(frozen=True)
class TwoLevel:
    """A statistic over seeds x instances with its two-level (crossed) bootstrap interval and p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    """Two-sided, re-centred on zero (meaningful for differences)."""
    seed_means: tuple[float, ...]
    seed_sd: float
    """Standard deviation of the per-seed means (ddof 1; 0 for one seed)."""


def _draws(matrix: npt.NDArray[np.float64], clusters: npt.NDArray[np.int64], rng: np.random.Generator,
           resamples: int) -> npt.NDArray[np.float64]:
    n_seeds, n = matrix.shape
    out = np.empty(resamples, dtype=np.float64)
    for start, stop in chunks(resamples, n):
        w = cluster_weights(clusters, rng, stop - start)  # instances (clusters), once per replicate
        per_seed = (w @ matrix.T) / w.sum(axis=1, keepdims=True)  # replicate x seed
        seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=stop - start)
        out[start:stop] = (per_seed * seeds).sum(axis=1) / n_seeds
    return out


def two_level_bootstrap(matrix: Sequence[Sequence[float]] | npt.NDArray[np.float64],
                        clusters: npt.NDArray[np.int64] | None = None, *, seed: int,
                        resamples: int = DEFAULT_RESAMPLES, level: float = 0.95) -> TwoLevel:
    """Mean of a seeds x instances matrix, resampling seeds and instances (or clusters) independently."""
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, not {resamples}; pass e.g. resamples=2000.")
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise DataError("A seeds x instances matrix needs at least one seed and one instance.")
    if not np.all(np.isfinite(m)):
        raise DataError("Per-instance scores contain NaN or infinity; check the HELM run's metric.")
    index = np.arange(m.shape[1]) if clusters is None else np.asarray(clusters)
    draws = _draws(m, index, np.random.default_rng(seed), resamples)
    low, high = percentile_interval(draws, level)
    means = m.mean(axis=1)
    estimate = float(means.mean())
    return TwoLevel(estimate=estimate, ci_low=low, ci_high=high, p_value=centred_p(draws, estimate, resamples),
                    seed_means=tuple(float(v) for v in means),
                    seed_sd=float(means.std(ddof=1)) if means.size > 1 else 0.0)


@dataclass(frozen=True)
class SeedSummary:
    """One multi-seed method against its baseline."""

    seeds: tuple[int, ...]
    n: int
    """Instances every seed (and the baseline, for the delta) was scored on."""
    mean: TwoLevel
    delta: TwoLevel | None


def seed_summary(per_seed: Mapping[int, Mapping[str, float]], baseline: Mapping[str, float] | None,
                 groups: Mapping[str, object], *, seed: int, resamples: int = DEFAULT_RESAMPLES) -> SeedSummary:
    """Mean over seeds and delta vs the baseline, each with its two-level bootstrap."""
    seeds = tuple(sorted(per_seed))
    common = set.intersection(*(set(per_seed[s]) for s in seeds))
    if not common:
        raise DataError("The seeds of a method share no instance ids; evaluate every seed on the same instances.")
    ids = sorted(common)
    matrix = np.array([[per_seed[s][i] for i in ids] for s in seeds], dtype=np.float64)
    mean = two_level_bootstrap(matrix, cluster_index(ids, groups), seed=seed, resamples=resamples)
    delta = None
    paired = sorted(common & set(baseline or {}))
    if baseline and paired:
        diffs = np.array([[per_seed[s][i] - baseline[i] for i in paired] for s in seeds], dtype=np.float64)
        delta = two_level_bootstrap(diffs, cluster_index(paired, groups), seed=seed + 1, resamples=resamples)
    return SeedSummary(seeds=seeds, n=len(ids), mean=mean, delta=delta)
