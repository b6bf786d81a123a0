"""Render the report table as Markdown, CSV, JSON and one self-contained HTML page (pure: strings)."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from html import escape
from typing import Any

from helm_optimizer.naming import METHOD_BASELINE, METHOD_ZS_COT, METHOD_ZS_PREDICT
from helm_optimizer.records import ReportFile
from helm_optimizer.report.notes import decoding_summary, header_notes
from helm_optimizer.report.plots import FigureBytes
from helm_optimizer.report.table import COLUMNS, SIGNIFICANCE_LEVEL, ReportRow, ReportTable

__all__ = ["render_csv", "render_html", "render_json", "render_markdown"]

_DASH = "–"


def _f3(value: float | None) -> str:
    return _DASH if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return _DASH if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return _DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _ci(low: float | None, high: float | None) -> str:
    return _DASH if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _int(value: int | None) -> str:
    return _DASH if value is None else str(value)


def _pct(value: float | None) -> str:
    return _DASH if value is None else f"{100 * value:.1f}%"


def _seeds(row: ReportRow) -> str:
    if row.num_seeds <= 1:
        return _DASH
    means = ", ".join(f"{m:.3f}" for m in row.seed_means)
    return f"{row.num_seeds} seeds: sd {row.seed_sd or 0.0:.3f}, spread {row.seed_spread or 0.0:.3f} ({means})"


def _sig(row: ReportRow) -> str:
    if row.significant is None:
        return _DASH
    return "yes" if row.significant else "no"


def _test(row: ReportRow) -> str:
    if row.test is None:
        return _DASH
    if row.test == "mcnemar-exact":
        return f"McNemar (b={row.mcnemar_b}, c={row.mcnemar_c})"
    if row.test == "cluster-bootstrap":
        return f"cluster bootstrap ({row.clusters} groups)"
    if row.test == "two-level-bootstrap":
        return "two-level bootstrap (seeds x instances)"
    return "paired bootstrap"


def _check(row: ReportRow) -> str:
    return "ok" if not row.warnings else f"WARNING: {row.warnings}"


def _tokens(prompt: int | None, completion: int | None) -> str:
    return _DASH if prompt is None or completion is None else f"{prompt} / {completion}"


_SCORE_HEADERS: tuple[str, ...] = (
    "scenario",
    "model",
    "method",
    "metric",
    "n",
    "mean",
    "95% CI",
    "Δ vs baseline",
    "Δ 95% CI",
    "p",
    "p (Holm)",
    "test",
    f"significant (Holm p<{SIGNIFICANCE_LEVEL})",
    "format failures",
    "extracted",
    "optimizer seeds",
    "check",
)


def _score_cells(row: ReportRow) -> list[str]:
    return [
        row.scenario,
        row.model,
        row.method,
        row.main_metric,
        str(row.n),
        _f3(row.mean),
        _ci(row.ci_low, row.ci_high),
        _signed(row.delta),
        _ci(row.delta_ci_low, row.delta_ci_high),
        _p(row.p_value),
        _p(row.p_value_adjusted),
        _test(row),
        _sig(row),
        _pct(row.format_failure_rate),
        _f3(row.extracted_mean),
        _seeds(row),
        _check(row),
    ]


_COST_HEADERS: tuple[str, ...] = (
    "scenario",
    "model",
    "method",
    "eval LM calls",
    "eval tokens (prompt / completion)",
    "eval cost",
    "eval wall time (s)",
    "opt LM calls",
    "opt tokens (prompt / completion)",
    "opt cost",
    "opt wall time (s)",
    "decoding",
    "mean completion tokens",
)


def _cost_cells(row: ReportRow) -> list[str]:
    return [
        row.scenario,
        row.model,
        row.method,
        str(row.eval_lm_calls),
        _tokens(row.eval_prompt_tokens, row.eval_completion_tokens),
        _f3(row.eval_cost),
        _f3(row.eval_wall_time_s),
        _int(row.opt_lm_calls),
        _tokens(row.opt_prompt_tokens, row.opt_completion_tokens),
        _f3(row.opt_cost),
        _f3(row.opt_wall_time_s),
        decoding_summary(row.decoding),
        _f3(row.mean_completion_tokens),
    ]


_FLIP_HEADERS = (
    "scenario",
    "method",
    "ahead under baseline",
    "ahead under method",
    "baseline means",
    "method means",
    "P(baseline order)",
    "P(method order)",
    "called",
)


def _flip_cells(table: ReportTable) -> list[list[str]]:
    return [
        [
            f.scenario,
            f.method,
            f.model_a,
            f.model_b,
            f"{f.baseline_a:.3f} > {f.baseline_b:.3f}",
            f"{f.method_a:.3f} < {f.method_b:.3f}",
            _f3(f.p_baseline_order),
            _f3(f.p_method_order),
            _DASH if f.stable is None else ("yes: stable" if f.stable else "no: not stable"),
        ]
        for f in table.flips
    ]


_STABILITY_HEADERS = ("scenario", "method", "ahead", "behind", "n", "P(order kept)", "stable")


def _stability_cells(table: ReportTable) -> list[list[str]]:
    return [[p.scenario, p.method, p.model_a, p.model_b, str(p.n), f"{p.p_order:.3f}", "yes" if p.stable else "no"]
            for p in table.stability]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(r) for r in rows)]


def render_markdown(table: ReportTable) -> str:
    """Scores table, cost table, ranking flips and run directories; numbers to 3 decimals."""
    lines = [
        "# HELM prompt optimization report",
        "",
        f"Bootstrap: {table.resamples} resamples, seed {table.seed}. Δ is method minus baseline over "
        "the instances both were scored on.",
        "",
        *(f"- {note}" for note in header_notes(table)),
        "",
        "## Scores",
        "",
        *_md_table(_SCORE_HEADERS, [_score_cells(r) for r in table.rows]),
        "",
        "## Cost",
        "",
        *_md_table(_COST_HEADERS, [_cost_cells(r) for r in table.rows]),
        "",
        "## Ranking flips",
        "",
    ]
    if table.flips:
        lines += _md_table(_FLIP_HEADERS, _flip_cells(table))
    else:
        lines.append("No pair of models changes order between the baseline and any method.")
    lines += ["", "## Rank stability", ""]
    if table.stability:
        lines += _md_table(_STABILITY_HEADERS, _stability_cells(table))
    else:
        lines.append("Fewer than two models per scenario and method: no pair to rank.")
    lines += ["", "## HELM run directories", "", *(f"- `{d}`" for d in table.run_dirs), ""]
    return "\n".join(lines)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    return str(value)


def render_csv(table: ReportTable) -> str:
    """Every column of :data:`COLUMNS`, full precision; ``run_dirs`` joined with ';'."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in table.rows:
        data = row.as_dict()
        writer.writerow([_csv_value(data[c]) for c in COLUMNS])
    return buffer.getvalue()


def render_json(table: ReportTable, *, stale: list[dict[str, str]] | None = None,
                value: dict[str, Any] | None = None) -> str:
    """Rows in :data:`COLUMNS` order at full precision, with rankings, flips and run directories."""
    payload = ReportFile(
        seed=table.seed,
        resamples=table.resamples,
        columns=list(COLUMNS),
        rows=[row.as_dict() for row in table.rows],
        rankings=[
            {"scenario": r.scenario, "method": r.method, "models": list(r.models), "means": list(r.means)}
            for r in table.rankings
        ],
        ranking_flips=[asdict(f) for f in table.flips],
        rank_stability=[{**asdict(p), "stable": p.stable} for p in table.stability],
        notes=header_notes(table),
        run_dirs=list(table.run_dirs),
        stale_records=stale or [],
        **(value or {}),
    )
    return json.dumps(payload.model_dump(mode="json"), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.baseline td { background: #f7f7f7; font-style: italic; }
tr.warn td { background: #fff3cd; }
td.sig { font-weight: bold; color: #0a6b2d; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
code { font-size: 0.85rem; }
.note { background: #f4f8fb; border-left: 4px solid #4a90c2; padding: 0.5rem 1rem; }
"""

_HOW_TO_READ = f"""
<div class="note">
<p><b>How to read this report.</b> Each row is one prompting method for one (scenario, model),
evaluated by HELM on the same test instances. <i>{METHOD_BASELINE}</i> is HELM's own prompt;
<i>{METHOD_ZS_PREDICT}</i> and <i>{METHOD_ZS_COT}</i> are zero-shot DSPy programs; other methods are DSPy
optimizers.</p>
<ul>
<li><b>mean</b> is the average of the scenario's main metric over instances (cross-fitted scenarios
merge their folds), with a 95% percentile-bootstrap confidence interval.</li>
<li><b>Δ vs baseline</b> is method minus baseline over the instances both were scored on, with a
paired-bootstrap 95% CI. The <b>p</b>-value is McNemar's exact test when both metrics are 0/1 per
instance (b = instances only the method gets right, c = only the baseline), otherwise the paired
bootstrap; where instances share a group it is a cluster bootstrap, and for several optimizer seeds
a two-level bootstrap over seeds and instances. <b>p (Holm)</b> adjusts p for every comparison of
the report (Holm's step-down method); <b>significant</b> means p (Holm) &lt; 0.05.</li>
<li><b>format failures</b> is the share of answers HELM's metric cannot read (an option letter for
multiple choice); <b>extracted</b> is the multiple-choice accuracy after one extraction rule applied
to every method. <b>decoding</b> (cost table) says what each method decoded under.</li>
<li><b>Ranking flips</b> list pairs of models whose order under a method reverses their order under
the baseline prompt.</li>
<li><b>check</b> confirms that the per-instance mean equals HELM's aggregate; any mismatch, missing
fold, partial overlap with the baseline, agent whose optimization data could not be verified against
the evaluated instances, or agent demos dropped for quoting test questions is shown as a warning.</li>
</ul>
</div>
"""


def _html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    row_class: Callable[[int], str] | None = None,
    numeric: frozenset[int] = frozenset(),
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, cells in enumerate(rows):
        cls = row_class(i) if row_class else ""
        attr = f' class="{cls}"' if cls else ""
        tds = "".join(
            f'<td class="num">{escape(c)}</td>' if j in numeric else f"<td>{escape(c)}</td>"
            for j, c in enumerate(cells)
        )
        body.append(f"<tr{attr}>{tds}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _row_class(rows: Sequence[ReportRow]) -> Callable[[int], str]:
    def cls(i: int) -> str:
        row = rows[i]
        classes = []
        if row.method == METHOD_BASELINE:
            classes.append("baseline")
        if row.warnings:
            classes.append("warn")
        return " ".join(classes)

    return cls


def _img(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{escape(alt)}">'


def render_html(table: ReportTable, figures: FigureBytes, sections: Sequence[str] = ()) -> str:
    """One self-contained page: inline CSS, figures as base64 SVG data URIs, no URLs; ``sections`` (ready
    HTML, e.g. the instance explorer with its inline script) go after the cost table."""
    rows = table.rows
    scores = _html_table(
        _SCORE_HEADERS,
        [_score_cells(r) for r in rows],
        _row_class(rows),
        numeric=frozenset({4, 5, 6, 7, 8, 9, 10, 13, 14}),
    )
    costs = _html_table(
        _COST_HEADERS, [_cost_cells(r) for r in rows], _row_class(rows), numeric=frozenset({*range(3, 11), 12})
    )
    stability = (_html_table(_STABILITY_HEADERS, _stability_cells(table), numeric=frozenset({4, 5}))
                 if table.stability else "<p>Fewer than two models per scenario and method: no pair to rank.</p>")
    notes = "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in header_notes(table)) + "</ul>"
    if table.flips:
        flips = _html_table(_FLIP_HEADERS, _flip_cells(table))
    else:
        flips = "<p>No pair of models changes order between the baseline and any method.</p>"
    warnings = [r for r in rows if r.warnings]
    warn_html = (
        "<ul>"
        + "".join(
            f"<li>{escape(r.scenario)} / {escape(r.model)} / {escape(r.method)}: {escape(r.warnings)}</li>"
            for r in warnings
        )
        + "</ul>"
        if warnings
        else "<p>All checks passed: every per-instance mean equals HELM's aggregate.</p>"
    )
    run_dirs = (
        "<p>Relative paths are relative to the output directory.</p>\n<ul>\n"
        + "\n".join(f"<li><code>{escape(d)}</code></li>" for d in table.run_dirs)
        + "\n</ul>"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        "<title>HELM prompt optimization report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>HELM prompt optimization report</h1>",
        f"<p>{len(table.scenarios)} scenario(s), {len({r.model for r in rows})} model(s), "
        f"{len({r.method for r in rows})} method(s); bootstrap with {table.resamples} resamples, "
        f"seed {table.seed}.</p>",
        notes,
        _HOW_TO_READ,
        "<h2>Scores by scenario and model</h2>",
        "<figure>",
        _img(figures.scores_svg, "Main metric per scenario, model and method with 95% CIs"),
        "<figcaption>Bars: mean of the main metric; whiskers: 95% bootstrap CI; "
        "hatched grey: HELM baseline prompt.</figcaption>",
        "</figure>",
        "<h2>Scores</h2>",
        scores,
        "<h2>Model rankings</h2>",
        "<figure>",
        _img(figures.rankings_svg, "Model ranks per method; red rings mark flips against the baseline"),
        "<figcaption>Rank 1 is best. A red ring marks a model whose order against another model "
        "is reversed relative to the baseline.</figcaption>",
        "</figure>",
        "<h2>Rank stability</h2>",
        "<p>Probability (paired bootstrap over instances, and seeds where present) that the model ranked "
        "ahead stays ahead; a flip is called only when both orders are stable (at least 0.95).</p>",
        stability,
        "<h2>Ranking flips</h2>",
        flips,
        "<h2>Cost</h2>",
        costs,
        *sections,
        "<h2>Checks</h2>",
        warn_html,
        "<h2>HELM run directories</h2>",
        run_dirs,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)
