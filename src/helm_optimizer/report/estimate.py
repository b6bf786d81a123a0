"""The report's "Estimate vs actual" section: a sweep's pre-flight estimate beside the calls it made.

The sweep writes ``report/estimate.json`` (:class:`~helm_optimizer.records.EstimateComparison`) when
it ends; the report shows it when it is there: per cell the estimated and actual LM calls and
cost, per endpoint the limiter's counts (cache hits, 429s, back-off, waits, most calls in flight).
"""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path
from typing import Any

from helm_optimizer.errors import DataError
from helm_optimizer.records import EstimateComparison, read_record

__all__ = ["load_comparison", "render_estimate_html", "render_estimate_markdown"]

logger = logging.getLogger(__name__)

_CELL_HEADERS = ("cell", "estimated calls", "actual calls", "error", "estimated cost", "actual cost")
_ENDPOINT_HEADERS = ("endpoint", "calls", "cache hits", "429s", "back-off s", "waited s", "most in flight", "limit")


def load_comparison(output_dir: Path) -> EstimateComparison | None:
    """The last sweep's comparison under ``output_dir/report``; None when there is none (or it is damaged)."""
    path = Path(output_dir) / "report" / "estimate.json"
    if not path.is_file():
        return None
    try:
        return read_record(EstimateComparison, path)
    except DataError as exc:
        logger.warning("Leaving the estimate out of the report: %s", exc)
        return None


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def _summary(c: EstimateComparison) -> str:
    wall = f", actual {c.actual_wall_s:,.1f} s" if c.actual_wall_s is not None else ""
    return (f"LM calls: estimated {_fmt(c.estimated_lm_calls)}, actual {_fmt(c.actual_lm_calls)} "
            f"(error {_fmt(c.estimate_error, 3)}); cost: estimated {_fmt(c.estimated_cost, 4)}; "
            f"wall: estimated {_fmt(c.estimated_wall_s, 1)} s{wall}.")


def _cell_rows(c: EstimateComparison) -> list[list[str]]:
    return [[r.cell, _fmt(r.estimated_lm_calls), _fmt(r.actual_lm_calls), _fmt(r.error, 3),
             _fmt(r.estimated_cost, 4), _fmt(r.actual_cost, 4)] for r in c.rows]


def _endpoint_rows(c: EstimateComparison) -> list[list[str]]:
    endpoints: dict[str, dict[str, Any]] = (c.limits or {}).get("endpoints") or {}
    return [[name, _fmt(e.get("calls")), _fmt(e.get("cache_hits")), _fmt(e.get("throttled")),
             _fmt(e.get("backoff_s"), 1), _fmt(e.get("waited_s"), 1), _fmt(e.get("max_in_flight")),
             _fmt(e.get("max_concurrency"))] for name, e in endpoints.items()]


def render_estimate_markdown(c: EstimateComparison, *, heading: str = "##") -> str:
    def table(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
        return (["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
                + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows])

    lines = [f"{heading} Estimate vs actual", "", _summary(c), "", *table(_CELL_HEADERS, _cell_rows(c))]
    endpoints = _endpoint_rows(c)
    if endpoints:
        lines += ["", f"{heading}# Endpoints", "", *table(_ENDPOINT_HEADERS, endpoints)]
    lines += ["", "Assumptions: " + "; ".join(c.assumptions) + "."]
    return "\n".join(lines) + "\n"


def render_estimate_html(c: EstimateComparison) -> str:
    def table(headers: tuple[str, ...], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f'<td class="num">{escape(v)}</td>' if i else f"<td>{escape(v)}</td>"
                                        for i, v in enumerate(row)) + "</tr>" for row in rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>\n"

    endpoints = _endpoint_rows(c)
    return ('<section id="estimate">\n<h2>Estimate vs actual</h2>\n'
            f"<p>{escape(_summary(c))}</p>\n" + table(_CELL_HEADERS, _cell_rows(c))
            + (("<h3>Endpoints</h3>\n" + table(_ENDPOINT_HEADERS, endpoints)) if endpoints else "")
            + f"<p>Assumptions: {escape('; '.join(c.assumptions))}.</p>\n</section>")
