"""After a sweep: its pre-flight estimate beside the actual LM calls and cost of every cell, and the limits' log.

Actual figures come from what the cells left: the agents' metadata (``usage``) for optimization
cells, the evaluation records for evaluation cells, so a resumed sweep reports what each cell cost
when it ran. Written to ``OUTPUT_DIR/report/estimate.md`` and ``estimate.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_optimizer._io import write_text_atomic
from helm_optimizer.errors import DataError
from helm_optimizer.records import (
    AgentMeta,
    EstimateComparison,
    EstimateRow,
    EvaluationRecord,
    read_record,
    write_record,
)
from helm_optimizer.report.estimate import render_estimate_markdown
from helm_optimizer.sweep.cells import plan_cells
from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.estimate import SweepEstimate

__all__ = ["actual_usage", "write_comparison"]


def _read(kind: Any, path: Path) -> dict[str, Any] | None:
    """One typed record as plain data (None when it is damaged: the comparison leaves it out)."""
    try:
        data: dict[str, Any] = read_record(kind, path).model_dump(mode="json")
    except DataError:
        return None
    return data


def actual_usage(config: SweepConfig) -> dict[str, dict[str, Any]]:
    """``{cell label: {"lm_calls", "cost"}}`` from the agents' metadata and the evaluation records."""
    metas = [m for p in sorted((config.output_dir / "agents").rglob("*.meta.json")) if (m := _read(AgentMeta, p))]
    records = [r for p in sorted((config.output_dir / "evaluations").rglob("*.json"))
               if (r := _read(EvaluationRecord, p))]
    optimize_cells, evaluate_cells = plan_cells(config)
    out: dict[str, dict[str, Any]] = {}
    for cell in optimize_cells + evaluate_cells:
        entry, model = config.scenarios[cell.scenario].entry, config.models[cell.model].model
        if cell.kind == "optimize":
            found = [m.get("usage") or {} for m in metas if m.get("run_entry") == entry and m.get("model") == model
                     and m.get("optimizer") == cell.optimizer and m.get("optimizer_seed") == cell.optimizer_seed]
        else:
            found = [r for r in records if r.get("run_entry") == entry and r.get("model") == model]
        costs: list[Any] = [u.get("cost") for u in found]
        known = [float(c) for c in costs if c is not None]
        out[cell.label(config)] = {
            "lm_calls": sum(int(u.get("lm_calls") or 0) for u in found) if found else None,
            "cost": None if not found or len(known) < len(costs) else round(sum(known), 6),
        }
    return out


def write_comparison(config: SweepConfig, estimate: SweepEstimate, limits: dict[str, Any] | None,
                     wall_s: float | None = None) -> Path:
    """Write ``report/estimate.md`` and ``report/estimate.json``; returns the Markdown file."""
    actual = actual_usage(config)
    rows: list[dict[str, Any]] = []
    for cell in estimate.cells:
        got = actual.get(cell.label, {})
        calls = got.get("lm_calls")
        error = (abs((cell.lm_calls or 0) - calls) / calls) if cell.lm_calls is not None and calls else None
        rows.append({"cell": cell.label, "estimated_lm_calls": None if cell.lm_calls is None else round(cell.lm_calls),
                     "actual_lm_calls": calls, "error": None if error is None else round(error, 3),
                     "estimated_cost": None if cell.cost is None else round(cell.cost, 6),
                     "actual_cost": got.get("cost")})
    est_total = estimate.lm_calls
    act_total = sum(int(r["actual_lm_calls"] or 0) for r in rows)
    total_error = abs(est_total - act_total) / act_total if est_total is not None and act_total else None
    record = EstimateComparison(
        **estimate.as_json(), actual_lm_calls=act_total,
        estimate_error=None if total_error is None else round(total_error, 3),
        actual_wall_s=None if wall_s is None else round(wall_s, 1), rows=[EstimateRow(**r) for r in rows],
        limits=limits)
    target = config.output_dir / "report"
    write_record(target / "estimate.json", record)
    path = target / "estimate.md"
    write_text_atomic(path, render_estimate_markdown(record, heading="#"))
    return path
