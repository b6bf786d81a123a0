"""Read what the table needs from HELM's per-instance outputs: format figures and instance groups."""

from __future__ import annotations

from collections.abc import Sequence

from helm_optimizer.report.columns import ReportDetails
from helm_optimizer.report.format import FormatStats, format_stats
from helm_optimizer.report.groups import instance_groups_of_run
from helm_optimizer.report.outputs import read_outputs
from helm_optimizer.report.records import MethodResult
from helm_optimizer.report.table import BASELINE

__all__ = ["collect_details"]


def _format_of(result: MethodResult) -> FormatStats | None:
    parts = []
    for record in result.records:
        outputs = read_outputs(record.run_dir)
        if outputs is None:
            return None
        parts.append(format_stats(outputs, record.entry_name, ids=set(result.scores)))
    if not parts:
        return None
    extracted = [p.extracted_correct for p in parts]
    return FormatStats(n=sum(p.n for p in parts), failures=sum(p.failures for p in parts),
                       extracted_correct=None if any(e is None for e in extracted)
                       else sum(e for e in extracted if e is not None))


def _groups_of(result: MethodResult) -> dict[str, object]:
    out: dict[str, object] = {}
    for index, record in enumerate(result.records):
        for instance_id, group in instance_groups_of_run(record.run_dir, record.entry_name).items():
            out[instance_id] = (index, group)
    return out


def collect_details(results: Sequence[MethodResult]) -> ReportDetails:
    """Format figures of every result and, per scenario, the groups of its instances.

    Groups are read from the baseline's run (every method scores the same instances), else from
    the first result of the scenario.
    """
    formats = {(r.scenario, r.model, r.method, r.optimizer_seed): f for r in results
               if (f := _format_of(r)) is not None}
    groups: dict[str, dict[str, object]] = {}
    for scenario in dict.fromkeys(r.scenario for r in results):
        candidates = [r for r in results if r.scenario == scenario]
        source = next((r for r in candidates if r.method == BASELINE), candidates[0])
        groups[scenario] = _groups_of(source)
    return ReportDetails(formats=formats, groups=groups)
