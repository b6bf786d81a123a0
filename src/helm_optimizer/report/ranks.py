"""Rank stability: how likely each pair of models keeps its order, per scenario and method.

For two models scored on the same instances, the paired bootstrap (whole clusters where instances
share a group; seeds as well when a method has several optimizer seeds) gives the probability that
the model ranked first stays ahead. A ranking flip against the baseline is *called* only when both
orders are stable: the baseline order holds with probability at least :data:`STABLE` and the
reversed order under the method too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import numpy.typing as npt

from helm_optimizer.errors import DataError
from helm_optimizer.report.resample import chunks, cluster_weights
from helm_optimizer.report.stats import DEFAULT_RESAMPLES, RankingFlip, cluster_index

__all__ = ["STABLE", "PairStability", "mark_flips", "order_probability", "rank_stability"]

STABLE = 0.95

Scores = Mapping[int | None, Mapping[str, float]]
"""Per optimizer seed (None for a single-seed method): instance id -> score."""


@dataclass(frozen=True)
class PairStability:
    scenario: str
    method: str
    model_a: str
    """Ranked ahead (higher mean)."""
    model_b: str
    n: int
    """Instances both models were scored on."""
    p_order: float
    """Bootstrap probability that model_a stays ahead of model_b."""

    @property
    def stable(self) -> bool:
        return self.p_order >= STABLE


def order_probability(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64],
                      clusters: npt.NDArray[np.int64] | None = None, *, seed: int,
                      resamples: int = DEFAULT_RESAMPLES) -> float:
    """Probability that model ``a`` is ahead of ``b`` (ties count one half).

    ``a`` and ``b`` are seeds x instances matrices over the same instances (one row without seeds).
    Instances (or clusters) are drawn once per replicate for both models; each model's seeds are
    drawn independently.
    """
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, not {resamples}; pass e.g. resamples=2000.")
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise DataError("Rank stability needs both models scored on the same instances.")
    index = np.arange(a.shape[1]) if clusters is None else clusters
    rng = np.random.default_rng(seed)
    wins = 0.0
    for start, stop in chunks(resamples, a.shape[1]):
        w = cluster_weights(index, rng, stop - start)
        total = w.sum(axis=1, keepdims=True)
        sides = []
        for m in (a, b):
            per_seed = (w @ m.T) / total
            counts = rng.multinomial(m.shape[0], np.full(m.shape[0], 1.0 / m.shape[0]), size=stop - start)
            sides.append((per_seed * counts).sum(axis=1) / m.shape[0])
        diff = sides[0] - sides[1]
        wins += float(np.count_nonzero(diff > 1e-12)) + 0.5 * float(np.count_nonzero(np.abs(diff) <= 1e-12))
    return wins / resamples


def _matrix(scores: Scores, ids: Sequence[str]) -> npt.NDArray[np.float64]:
    ordered = sorted(scores.items(), key=lambda kv: -1 if kv[0] is None else kv[0])
    return np.array([[per[i] for i in ids] for _, per in ordered], dtype=np.float64)


def _common(scores: Scores) -> set[str]:
    return set.intersection(*(set(per) for per in scores.values())) if scores else set()


def rank_stability(scenario: str, method: str, by_model: Mapping[str, Scores], groups: Mapping[str, object], *,
                   seed: int, resamples: int = DEFAULT_RESAMPLES) -> list[PairStability]:
    """Every pair of models of one scenario and method, ordered by mean, with P(order kept)."""
    means = {m: float(_matrix(s, sorted(_common(s))).mean()) for m, s in by_model.items() if _common(s)}
    out: list[PairStability] = []
    for first, second in combinations(sorted(means, key=lambda m: (-means[m], m)), 2):
        ids = sorted(_common(by_model[first]) & _common(by_model[second]))
        if not ids:
            continue
        p = order_probability(_matrix(by_model[first], ids), _matrix(by_model[second], ids),
                              cluster_index(ids, groups), seed=seed, resamples=resamples)
        out.append(PairStability(scenario, method, first, second, len(ids), p))
    return out


def mark_flips(flips: Sequence[RankingFlip], pairs: Sequence[PairStability]) -> list[RankingFlip]:
    """Each flip with the bootstrap probability of both orders; ``stable`` only when both are stable."""
    lookup = {(p.scenario, p.method, p.model_a, p.model_b): p.p_order for p in pairs}

    def p_ahead(scenario: str, method: str, ahead: str, behind: str) -> float | None:
        if (scenario, method, ahead, behind) in lookup:
            return lookup[(scenario, method, ahead, behind)]
        reverse = lookup.get((scenario, method, behind, ahead))
        return None if reverse is None else 1.0 - reverse

    out = []
    for flip in flips:
        base = p_ahead(flip.scenario, "baseline", flip.model_a, flip.model_b)
        method = p_ahead(flip.scenario, flip.method, flip.model_b, flip.model_a)
        stable = None if base is None or method is None else (base >= STABLE and method >= STABLE)
        out.append(replace(flip, p_baseline_order=base, p_method_order=method, stable=stable))
    return out
