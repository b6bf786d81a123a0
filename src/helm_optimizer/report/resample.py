"""Resampling primitives shared by the report's bootstraps (pure numpy).

Clusters generalize instances: with every instance in its own cluster, drawing clusters is the
ordinary bootstrap. A replicate's statistic is the weighted mean of the values, the weight of an
instance being how often its cluster was drawn (the ratio estimator of the cluster bootstrap).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_DRAWS_PER_CHUNK", "centred_p", "chunks", "cluster_weights", "percentile_interval", "weighted_means"]

MAX_DRAWS_PER_CHUNK = 4_000_000  # bounds memory: a chunk of replicates holds at most this many weights


def cluster_weights(clusters: npt.NDArray[np.int64], rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
    """``count`` x n instance weights: how often each instance's cluster was drawn (G clusters from G)."""
    g = int(clusters.max()) + 1
    draws = rng.multinomial(g, np.full(g, 1.0 / g), size=count).astype(np.float64)
    return draws[:, clusters]


def chunks(resamples: int, n: int) -> list[tuple[int, int]]:
    size = max(1, MAX_DRAWS_PER_CHUNK // max(1, n))
    return [(start, min(resamples, start + size)) for start in range(0, resamples, size)]


def weighted_means(x: npt.NDArray[np.float64], clusters: npt.NDArray[np.int64], rng: np.random.Generator,
                   resamples: int) -> npt.NDArray[np.float64]:
    """``resamples`` cluster-bootstrap means of ``x``."""
    out = np.empty(resamples, dtype=np.float64)
    for start, stop in chunks(resamples, x.size):
        w = cluster_weights(clusters, rng, stop - start)
        out[start:stop] = (w @ x) / w.sum(axis=1)
    return out


def percentile_interval(draws: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def centred_p(draws: npt.NDArray[np.float64], delta: float, resamples: int) -> float:
    """Two-sided bootstrap p-value of ``delta`` against zero: ``(1 + #{|d* - d| >= |d|}) / (1 + R)``."""
    tolerance = 1e-12 * max(1.0, abs(delta))
    extreme = int(np.count_nonzero(np.abs(draws - delta) >= abs(delta) - tolerance))
    return min(1.0, (1 + extreme) / (1 + resamples))
