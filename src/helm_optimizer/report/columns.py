"""Per-row figures of the report table beyond the mean: groups, format, decoding, usage, provenance.

Pure functions over :class:`~helm_optimizer.report.records.MethodResult` and the
:class:`ReportDetails` read from HELM's per-instance outputs (:mod:`helm_optimizer.report.details`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from helm_optimizer.report.format import FormatStats
from helm_optimizer.report.records import MethodResult, Usage
from helm_optimizer.report.stats import cluster_index

__all__ = ["ReportDetails", "clustered", "decoding_of", "format_figures", "provenance_problems", "usages"]


@dataclass(frozen=True)
class ReportDetails:
    """What the table needs from HELM's per-instance outputs (read by :mod:`helm_optimizer.report.build`)."""

    formats: Mapping[tuple[str, str, str, int | None], FormatStats] = field(default_factory=dict)
    """(scenario, model, method, optimizer seed) -> format figures over all folds."""
    groups: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    """scenario -> instance id -> group number (instances of one group are resampled together)."""


def _sum_usage(usages: Sequence[Usage | None]) -> Usage | None:
    present = [u for u in usages if u is not None]
    if not present:
        return None
    total = present[0]
    for usage in present[1:]:
        total = total + usage
    return total


def provenance_problems(provenance: Mapping[str, Any] | None) -> list[str]:
    """What an agent's evaluation record says could not be verified or was changed (issue 13)."""
    if provenance is None:
        return []
    problems = [str(p) for p in provenance.get("problems") or []]
    if provenance.get("overlap"):
        problems.append(f"{provenance['overlap']} evaluated instances were in the agent's optimization data")
    return problems


def clustered(scores: Mapping[str, float], groups: Mapping[str, object]) -> int | None:
    """Number of groups among ``scores``' instances when some group holds several of them, else None."""
    if not groups:
        return None
    index = cluster_index(sorted(scores), groups)
    count = int(index.max()) + 1 if index.size else 0
    return count if 0 < count < index.size else None


def format_figures(details: ReportDetails, results: Sequence[MethodResult]) -> tuple[float | None, float | None]:
    found = [details.formats.get((r.scenario, r.model, r.method, r.optimizer_seed)) for r in results]
    rates = [f.failure_rate for f in found if f is not None and f.failure_rate is not None]
    extracted = [f.extracted_mean for f in found if f is not None and f.extracted_mean is not None]
    return (None if not rates else math.fsum(rates) / len(rates),
            None if not extracted else math.fsum(extracted) / len(extracted))


def decoding_of(results: Sequence[MethodResult]) -> tuple[dict[str, Any] | None, float | None]:
    records = [r for result in results for r in result.records]
    decoding = next((dict(r.decoding) for r in records if r.decoding is not None), None)
    tokens = [(r.mean_completion_tokens, r.count) for r in records if r.mean_completion_tokens is not None]
    weight = sum(n for _, n in tokens)
    mean = None if not tokens or weight == 0 else math.fsum(t * n for t, n in tokens) / weight
    return decoding, mean


def usages(results: Sequence[MethodResult]) -> tuple[Usage, Usage | None]:
    records = [r for result in results for r in result.records]
    evaluation = records[0].evaluation
    for record in records[1:]:
        evaluation = evaluation + record.evaluation
    return evaluation, _sum_usage([r.optimization for r in records])
