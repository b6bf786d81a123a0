"""What a sweep prints when it ends: the result table (scenario × model × method) and where the report is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from helm_optimizer.cli.progress import RowSpec

__all__ = ["print_result_summary", "sweep_rows"]

_DASH = "—"


def sweep_rows(config: Any) -> list[RowSpec]:
    """The display rows of a sweep: every cell with its estimated LM calls, then summarize and report."""
    from helm_optimizer.sweep.quick_estimate import estimate_calls
    from helm_optimizer.sweep.run import plan_cells

    optimize_cells, evaluate_cells = plan_cells(config)
    rows = [RowSpec(c.label(config), c.kind, estimate_calls(config, c.kind, c.optimizer))
            for c in optimize_cells + evaluate_cells]
    if config.summarize:
        rows.append(RowSpec("helm-summarize", "final"))
    if config.report:
        rows.append(RowSpec("report", "final"))
    return rows


def _f(value: Any, signed: bool = False) -> str:
    if value is None:
        return _DASH
    return f"{float(value):+.3f}" if signed else f"{float(value):.3f}"


def _p(value: Any) -> str:
    if value is None:
        return _DASH
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def print_result_summary(report_html: Path | None, console: Console) -> bool:
    """Print the report's rows as one table, then the report's path; False when there is no report."""
    if report_html is None:
        return False
    try:
        payload = json.loads((report_html.parent / "report.json").read_text(encoding="utf-8"))
        rows: list[dict[str, Any]] = list(payload["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        console.print(f"Report: {report_html}", highlight=False)
        return True
    adjusted = any("p_value_adjusted" in r for r in rows)
    p_header = "adjusted p" if adjusted else "p (not adjusted)"
    table = Table(title="Results (main metric on the test instances; Δ and p against the baseline)",
                  title_justify="left")
    for column in ("scenario", "model", "method", "n", "mean", "95% CI", "Δ vs baseline", p_header):
        table.add_column(column, overflow="fold")
    for row in rows:
        p = row.get("p_value_adjusted") if adjusted else row.get("p_value")
        ci = _DASH if row.get("ci_low") is None else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        table.add_row(str(row.get("scenario")), str(row.get("model")), str(row.get("method")), str(row.get("n")),
                      _f(row.get("mean")), ci, _f(row.get("delta"), signed=True), _p(p))
    console.print(table)
    for line in payload.get("verdicts", []):
        console.print(str(line), highlight=False, markup=False)
    console.print(f"Report: {report_html}", highlight=False)
    return True
