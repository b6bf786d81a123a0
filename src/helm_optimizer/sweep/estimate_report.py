"""After a sweep: its pre-flight estimate beside the actual LM calls and cost of every cell, and the limits' log.

Actual figures come from what the cells left: the agents' metadata (``usage``) for optimization
cells, the evaluation records for evaluation cells, so a resumed sweep reports what each cell cost
when it ran. Written to ``OUTPUT_DIR/report/estimate.md`` and ``estimate.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_optimizer._io import write_json_atomic, write_text_atomic
from helm_optimizer.errors import DataError
from helm_optimizer.records import AgentMeta, EvaluationRecord, read_record
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


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


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
    data = {**estimate.as_json(), "actual_lm_calls": act_total,
            "estimate_error": None if total_error is None else round(total_error, 3),
            "actual_wall_s": None if wall_s is None else round(wall_s, 1), "rows": rows, "limits": limits}
    target = config.output_dir / "report"
    write_json_atomic(target / "estimate.json", data)
    lines = ["# Estimate vs actual", "",
             f"LM calls: estimated {_fmt(est_total)}, actual {_fmt(act_total)} (error {_fmt(total_error, 3)}); "
             f"cost: estimated {_fmt(estimate.cost, 4)}; wall: estimated {_fmt(estimate.wall_s, 1)} s"
             + (f", actual {wall_s:,.1f} s" if wall_s is not None else "") + ".", "",
             "| cell | estimated calls | actual calls | error | estimated cost | actual cost |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['cell']} | {_fmt(r['estimated_lm_calls'])} | {_fmt(r['actual_lm_calls'])} | "
              f"{_fmt(r['error'], 3)} | {_fmt(r['estimated_cost'], 4)} | {_fmt(r['actual_cost'], 4)} |" for r in rows]
    endpoints = (limits or {}).get("endpoints") or {}
    if endpoints:
        lines += ["", "## Endpoints", "",
                  "| endpoint | calls | cache hits | 429s | back-off s | waited s | most in flight | limit |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {_fmt(e['calls'])} | {_fmt(e['cache_hits'])} | {_fmt(e['throttled'])} | "
                  f"{_fmt(e['backoff_s'], 1)} | {_fmt(e['waited_s'], 1)} | {_fmt(e['max_in_flight'])} | "
                  f"{_fmt(e['max_concurrency'])} |" for name, e in endpoints.items()]
    lines += ["", "Assumptions: " + "; ".join(estimate.assumptions) + "."]
    path = target / "estimate.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
