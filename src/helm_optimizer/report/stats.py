"""Pure statistics for the report: bootstrap CIs, paired tests, multiplicity and model rankings.

numpy only. Every random draw comes from ``numpy.random.default_rng(seed)``: the same inputs and
seed give the same numbers.

* Instances that share a group (near-duplicate questions, MEDEC's note pairs, MedCalc-Bench's
  shared patient notes) are not independent: :func:`cluster_bootstrap_mean_ci` and
  :func:`compare_clustered` resample whole groups, and both the interval and the test come from
  that one bootstrap.
* :func:`holm_adjust` controls the family-wise error rate over every comparison of a report
  (Holm's step-down method).
* Optimizer seeds: :mod:`helm_optimizer.report.seeds`; rank stability: :mod:`helm_optimizer.report.ranks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
import numpy.typing as npt

from helm_optimizer.errors import DataError
from helm_optimizer.naming import METHOD_BASELINE
from helm_optimizer.report.resample import centred_p, weighted_means

__all__ = [
    "DEFAULT_RESAMPLES",
    "McNemarResult",
    "MeanCI",
    "PairedBootstrap",
    "PairedComparison",
    "RankingFlip",
    "bootstrap_mean_ci",
    "cluster_bootstrap_mean_ci",
    "cluster_index",
    "compare_clustered",
    "compare_paired",
    "holm_adjust",
    "is_binary",
    "mcnemar_exact",
    "paired_bootstrap",
    "rank_models",
    "ranking_flips",
]

DEFAULT_RESAMPLES = 2000
_MAX_DRAWS_PER_CHUNK = 4_000_000  # bounds memory: a chunk of resamples holds at most this many indices

Values = Sequence[float] | npt.NDArray[np.float64]
TestName = Literal["mcnemar-exact", "paired-bootstrap", "cluster-bootstrap", "two-level-bootstrap"]


@dataclass(frozen=True)
class MeanCI:
    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PairedBootstrap:
    delta: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class McNemarResult:
    b: int
    """Instances the method gets right (1) and the baseline wrong (0)."""
    c: int
    """Instances the method gets wrong (0) and the baseline right (1)."""
    p_value: float


@dataclass(frozen=True)
class PairedComparison:
    """Method minus baseline over the instances both were scored on."""

    n: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: TestName
    b: int | None
    c: int | None


@dataclass(frozen=True)
class RankingFlip:
    """Two models whose order under ``method`` is the reverse of their order under the baseline."""

    scenario: str
    method: str
    model_a: str
    """The model ranked higher under the baseline."""
    model_b: str
    baseline_a: float
    baseline_b: float
    method_a: float
    method_b: float
    p_baseline_order: float | None = None
    """Bootstrap probability that model_a is ahead of model_b under the baseline."""
    p_method_order: float | None = None
    """Bootstrap probability that model_b is ahead of model_a under the method."""
    stable: bool | None = None
    """Both orders hold with probability >= the stability level: only then is the flip called."""


def _vector(values: Values) -> npt.NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise DataError("No per-instance scores to summarize; check that the HELM run scored its instances.")
    if not np.all(np.isfinite(x)):
        raise DataError("Per-instance scores contain NaN or infinity; check the HELM run's metric.")
    return x


def _check_resamples(resamples: int) -> None:
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, not {resamples}; pass e.g. resamples=2000.")


def _bootstrap_means(
    x: npt.NDArray[np.float64], rng: np.random.Generator, resamples: int
) -> npt.NDArray[np.float64]:
    n = x.size
    out = np.empty(resamples, dtype=np.float64)
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def _percentile_interval(draws: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: Values, *, seed: int, resamples: int = DEFAULT_RESAMPLES, level: float = 0.95
) -> MeanCI:
    """Mean with a percentile-bootstrap confidence interval (95% by default)."""
    _check_resamples(resamples)
    x = _vector(values)
    draws = _bootstrap_means(x, np.random.default_rng(seed), resamples)
    low, high = _percentile_interval(draws, level)
    return MeanCI(mean=float(x.mean()), ci_low=low, ci_high=high, n=int(x.size))


def paired_bootstrap(
    method: Values,
    baseline: Values,
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
) -> PairedBootstrap:
    """Paired bootstrap of ``mean(method - baseline)`` over aligned per-instance scores.

    The CI is the percentile interval of the resampled mean differences. The two-sided p-value
    compares the resampled differences re-centred on zero (the null of no difference) with the
    observed one: ``(1 + #{|d* - d| >= |d|}) / (1 + resamples)``.
    """
    _check_resamples(resamples)
    m, b = _vector(method), _vector(baseline)
    if m.shape != b.shape:
        raise DataError("Paired scores must have the same length; align them on common instance ids first.")
    d = m - b
    delta = float(d.mean())
    draws = _bootstrap_means(d, np.random.default_rng(seed), resamples)
    low, high = _percentile_interval(draws, level)
    tolerance = 1e-12 * max(1.0, abs(delta))
    extreme = int(np.count_nonzero(np.abs(draws - delta) >= abs(delta) - tolerance))
    p_value = min(1.0, (1 + extreme) / (1 + resamples))
    return PairedBootstrap(delta=delta, ci_low=low, ci_high=high, p_value=p_value)


def is_binary(values: Values) -> bool:
    """True when every value is exactly 0 or 1."""
    x = np.asarray(values, dtype=np.float64)
    return bool(np.all((x == 0.0) | (x == 1.0)))


def _binomial_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided binomial test p-value of ``k`` successes in ``n`` trials at p = 1/2."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1))
    return min(1.0, (2 * tail) / (1 << n))


def mcnemar_exact(method: Values, baseline: Values) -> McNemarResult:
    """Exact McNemar test on aligned binary (0/1) scores: a binomial test of b against b + c."""
    m, b = _vector(method), _vector(baseline)
    if m.shape != b.shape:
        raise DataError("Paired scores must have the same length; align them on common instance ids first.")
    if not (is_binary(m) and is_binary(b)):
        raise DataError("McNemar's test needs 0/1 scores; use paired_bootstrap for other metrics.")
    wins = int(np.count_nonzero((m == 1.0) & (b == 0.0)))
    losses = int(np.count_nonzero((m == 0.0) & (b == 1.0)))
    return McNemarResult(b=wins, c=losses, p_value=_binomial_two_sided_half(wins, wins + losses))


def compare_paired(
    method: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
) -> PairedComparison:
    """Compare a method with the baseline over the instance ids both have.

    Delta and its CI come from the paired bootstrap. The p-value is McNemar's exact test when both
    score vectors are binary, else the paired-bootstrap p-value.
    """
    common = sorted(method.keys() & baseline.keys())
    if not common:
        raise DataError("The method and the baseline share no instance ids; evaluate both on the same split.")
    m = np.array([method[i] for i in common], dtype=np.float64)
    b = np.array([baseline[i] for i in common], dtype=np.float64)
    boot = paired_bootstrap(m, b, seed=seed, resamples=resamples, level=level)
    if is_binary(m) and is_binary(b):
        exact = mcnemar_exact(m, b)
        return PairedComparison(
            n=len(common),
            delta=boot.delta,
            ci_low=boot.ci_low,
            ci_high=boot.ci_high,
            p_value=exact.p_value,
            test="mcnemar-exact",
            b=exact.b,
            c=exact.c,
        )
    return PairedComparison(
        n=len(common),
        delta=boot.delta,
        ci_low=boot.ci_low,
        ci_high=boot.ci_high,
        p_value=boot.p_value,
        test="paired-bootstrap",
        b=None,
        c=None,
    )


def rank_models(means: Mapping[str, float]) -> tuple[str, ...]:
    """Models from best to worst mean; ties are broken by model name."""
    return tuple(sorted(means, key=lambda model: (-means[model], model)))


def ranking_flips(
    scenario: str, means_by_method: Mapping[str, Mapping[str, float]], *, baseline: str = METHOD_BASELINE
) -> list[RankingFlip]:
    """Pairs of models whose order under each method strictly reverses their order under the baseline.

    ``means_by_method`` maps method -> model -> mean for one scenario. Only models scored under both
    the baseline and the method count; a tie on either side is not a flip.
    """
    reference = means_by_method.get(baseline)
    if reference is None:
        return []
    flips: list[RankingFlip] = []
    for method in sorted(m for m in means_by_method if m != baseline):
        scores = means_by_method[method]
        models = sorted(reference.keys() & scores.keys())
        for first, second in combinations(models, 2):
            base_gap = reference[first] - reference[second]
            method_gap = scores[first] - scores[second]
            if base_gap * method_gap >= 0:
                continue
            a, b = (first, second) if base_gap > 0 else (second, first)
            flips.append(
                RankingFlip(
                    scenario=scenario,
                    method=method,
                    model_a=a,
                    model_b=b,
                    baseline_a=reference[a],
                    baseline_b=reference[b],
                    method_a=scores[a],
                    method_b=scores[b],
                )
            )
    return flips


# ---------------------------------------------------------------------------------------------------
# Groups, multiplicity, seeds
# ---------------------------------------------------------------------------------------------------
def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (family-wise error control); ``None`` entries stay ``None``.

    With ``m`` p-values sorted ascending, the ``i``-th (0-based) becomes
    ``max_{j<=i} min(1, (m - j) * p_(j))``: reject where the adjusted value is below the level.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[index] = running
    return out


def cluster_index(ids: Sequence[str], groups: Mapping[str, object]) -> npt.NDArray[np.int64]:
    """Cluster number (0..G-1, by first appearance) of each id; an id without a group is its own."""
    numbers: dict[object, int] = {}
    out = np.empty(len(ids), dtype=np.int64)
    for k, instance_id in enumerate(ids):
        key = groups.get(instance_id, ("alone", instance_id))
        out[k] = numbers.setdefault(key, len(numbers))
    return out


def cluster_bootstrap_mean_ci(values: Values, clusters: npt.NDArray[np.int64], *, seed: int,
                              resamples: int = DEFAULT_RESAMPLES, level: float = 0.95) -> MeanCI:
    """Mean with a percentile interval from resampling whole clusters (the ratio estimator)."""
    _check_resamples(resamples)
    x = _vector(values)
    draws = weighted_means(x, np.asarray(clusters), np.random.default_rng(seed), resamples)
    low, high = _percentile_interval(draws, level)
    return MeanCI(mean=float(x.mean()), ci_low=low, ci_high=high, n=int(x.size))


def compare_clustered(method: Mapping[str, float], baseline: Mapping[str, float], groups: Mapping[str, object], *,
                      seed: int, resamples: int = DEFAULT_RESAMPLES, level: float = 0.95) -> PairedComparison:
    """Method minus baseline with interval and p-value from one paired *cluster* bootstrap.

    The p-value is the bootstrap's own (re-centred on the null, as :func:`paired_bootstrap`), so the
    interval and the test cannot disagree in procedure.
    """
    _check_resamples(resamples)
    common = sorted(method.keys() & baseline.keys())
    if not common:
        raise DataError("The method and the baseline share no instance ids; evaluate both on the same split.")
    d = np.array([method[i] - baseline[i] for i in common], dtype=np.float64)
    delta = float(d.mean())
    draws = weighted_means(d, cluster_index(common, groups), np.random.default_rng(seed), resamples)
    low, high = _percentile_interval(draws, level)
    return PairedComparison(n=len(common), delta=delta, ci_low=low, ci_high=high,
                            p_value=centred_p(draws, delta, resamples), test="cluster-bootstrap", b=None, c=None)
