"""Build the report from an output directory: read records, compute the table, write every file."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helm_optimizer._io import write_bytes_atomic, write_text_atomic
from helm_optimizer.errors import DataError
from helm_optimizer.report.details import collect_details
from helm_optimizer.report.estimate import load_comparison, render_estimate_html, render_estimate_markdown
from helm_optimizer.report.explorer import collect_explorer_data, render_explorer
from helm_optimizer.report.plots import render_figures
from helm_optimizer.report.records import find_record_files, load_records, load_results
from helm_optimizer.report.render import render_csv, render_html, render_json, render_markdown
from helm_optimizer.report.scope import StaleRecord, split_current
from helm_optimizer.report.stats import DEFAULT_RESAMPLES
from helm_optimizer.report.table import ReportRow, build_table
from helm_optimizer.report.value import render_value_html, render_value_markdown, value_json, value_summary

__all__ = ["ReportPaths", "build_report", "summarize_for_console"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportPaths:
    """The files :func:`build_report` wrote (and, for the CLI, the rows it computed)."""

    directory: Path
    markdown: Path
    csv: Path
    json: Path
    html: Path
    figure_png: Path
    figure_svg: Path
    rankings_png: Path
    rankings_svg: Path
    rows: tuple[ReportRow, ...] = field(default=(), repr=False, compare=False)
    stale: tuple[StaleRecord, ...] = field(default=(), repr=False, compare=False)
    """Records left out: not of the current configuration, or their agent changed."""

    @property
    def files(self) -> tuple[Path, ...]:
        return (
            self.markdown,
            self.csv,
            self.json,
            self.html,
            self.figure_png,
            self.figure_svg,
            self.rankings_png,
            self.rankings_svg,
        )


def build_report(
    output_dir: Path, *, out_dir: Path | None = None, seed: int = 0, resamples: int = DEFAULT_RESAMPLES
) -> ReportPaths:
    """Write the report of every evaluation record under ``OUTPUT_DIR/evaluations``.

    Files go to ``out_dir`` (default ``OUTPUT_DIR/report``): ``report.md``, ``report.csv``,
    ``report.json``, ``report.html``, ``scores.png``/``scores.svg`` and
    ``rankings.png``/``rankings.svg``. The same records, seed and resamples give the same bytes.
    """
    if resamples < 1:
        raise DataError(f"resamples must be at least 1, not {resamples}; pass e.g. --resamples 2000.")
    output_dir = Path(output_dir)
    target = output_dir / "report" if out_dir is None else Path(out_dir)
    current, stale = split_current(find_record_files(output_dir), output_dir)
    if not current and stale:
        raise DataError(f"Every evaluation record under {output_dir / 'evaluations'} is stale (e.g. {stale[0].path}: "
                        f"{stale[0].reason}); re-run `helm-optimizer sweep CONFIG` to evaluate the current setup.")
    records = load_records(output_dir, current)
    results = load_results(records)
    table = build_table(results, seed=seed, resamples=resamples, details=collect_details(results))
    figures = render_figures(table)
    paths = ReportPaths(
        directory=target,
        markdown=target / "report.md",
        csv=target / "report.csv",
        json=target / "report.json",
        html=target / "report.html",
        figure_png=target / "scores.png",
        figure_svg=target / "scores.svg",
        rankings_png=target / "rankings.png",
        rankings_svg=target / "rankings.svg",
        rows=table.rows,
        stale=tuple(stale),
    )
    value = value_summary(table.rows, results, seed=seed, resamples=resamples)
    explorer = collect_explorer_data(records)
    comparison = load_comparison(output_dir)  # a sweep's estimate beside its actual calls, when there is one
    write_text_atomic(paths.markdown, render_markdown(table) + "\n" + render_value_markdown(value)
                      + ("\n" + render_estimate_markdown(comparison) if comparison else "")
                      + _stale_markdown(stale, output_dir))
    write_text_atomic(paths.csv, render_csv(table))
    write_text_atomic(paths.json, render_json(table, stale=[{"path": _rel(s.path, output_dir), "reason": s.reason}
                                                            for s in stale], value=value_json(value)))
    write_bytes_atomic(paths.figure_png, figures.scores_png)
    write_bytes_atomic(paths.figure_svg, figures.scores_svg)
    write_bytes_atomic(paths.rankings_png, figures.rankings_png)
    write_bytes_atomic(paths.rankings_svg, figures.rankings_svg)
    write_text_atomic(paths.html, _with_stale_html(
        render_html(table, figures, [render_value_html(value), render_explorer(explorer),
                                     *([render_estimate_html(comparison)] if comparison else [])]), stale, output_dir))
    flagged = sum(1 for r in table.rows if r.warnings)
    if flagged:
        logger.warning(
            "%d of %d report rows carry warnings; see the 'warnings' column.", flagged, len(table.rows)
        )
    logger.info("Wrote report of %d rows to %s", len(table.rows), target)
    return paths


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _stale_markdown(stale: Sequence[StaleRecord], root: Path) -> str:
    if not stale:
        return ""
    lines = ["", f"## Stale records left out ({len(stale)})", "",
             "These evaluations no longer match the configuration or the agents on disk; re-run the sweep to "
             "replace them.", ""]
    lines += [f"- `{_rel(s.path, root)}`: {s.reason}" for s in stale]
    return "\n".join(lines) + "\n"


def _with_stale_html(page: str, stale: Sequence[StaleRecord], root: Path) -> str:
    if not stale:
        return page
    items = "".join(f"<li><code>{html.escape(_rel(s.path, root))}</code>: {html.escape(s.reason)}</li>"
                    for s in stale)
    section = (f'<section id="stale"><h2>Stale records left out ({len(stale)})</h2><p>These evaluations no longer '
               f"match the configuration or the agents on disk; re-run the sweep to replace them.</p><ul>{items}"
               "</ul></section>")
    return page.replace("</body>", section + "</body>", 1) if "</body>" in page else page + section


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def summarize_for_console(rows: Sequence[ReportRow]) -> list[dict[str, str]]:
    """A compact, pre-formatted view of the rows (one dict per row, same keys in every dict)."""
    summary: list[dict[str, str]] = []
    for row in rows:
        p = "" if row.p_value_adjusted is None else (
            "<0.001" if row.p_value_adjusted < 0.001 else f"{row.p_value_adjusted:.3f}")
        summary.append(
            {
                "scenario": row.scenario,
                "model": row.model,
                "method": row.method,
                "metric": row.main_metric,
                "n": str(row.n),
                "mean": _fmt(row.mean),
                "95% CI": f"[{row.ci_low:.3f}, {row.ci_high:.3f}]",
                "delta": _fmt(row.delta, signed=True),
                "p (Holm)": p,
                "sig": "" if row.significant is None else ("*" if row.significant else ""),
                "check": "ok" if not row.warnings else "WARNING",
            }
        )
    return summary
