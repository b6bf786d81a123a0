"""Cost per point: what each method's gain costs, against the baseline and against zero-shot CoT.

For a method and a comparator (HELM's baseline prompt, or DSPy's zero-shot chain of thought) on the
same (scenario, model): Δ is the paired difference of the main metric over the instances both were
scored on; the *extra spend* is what the method cost (its optimization, where it has one, plus its
evaluation) minus what the comparator cost (its evaluation), in dollars and in tokens. Δ per dollar
and Δ per 1,000 tokens divide the one by the other; they are left empty when the method costs no
more than the comparator (or a price is unknown).

Per (scenario, model) a verdict says whether any optimizer beats zero-shot CoT significantly:
paired tests of each optimizer against zero-shot CoT, Holm-adjusted over that cell's optimizers.
Chain of thought alone often brings most of the gain over a plain prompt; an optimizer has to beat
it, not only the baseline, to be worth its optimization.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from html import escape
from typing import Any

from helm_optimizer.report.records import MethodResult
from helm_optimizer.report.stats import compare_paired
from helm_optimizer.report.table import BASELINE, SIGNIFICANCE_LEVEL, ReportRow

__all__ = ["ZERO_SHOT_COT", "CostPoint", "ValueSummary", "Verdict", "holm", "render_value_html",
           "render_value_markdown", "value_json", "value_summary"]

ZERO_SHOT_COT = ("ZeroShotCoT", "zs-cot")
_NOT_OPTIMIZERS = frozenset({BASELINE, "ZeroShotPredict", "zs-predict", *ZERO_SHOT_COT})


@dataclass(frozen=True)
class CostPoint:
    scenario: str
    model: str
    method: str
    comparator: str
    delta: float | None
    p_value: float | None
    extra_cost: float | None
    extra_tokens: int
    delta_per_dollar: float | None
    delta_per_1k_tokens: float | None


@dataclass(frozen=True)
class Verdict:
    scenario: str
    model: str
    beats_cot: bool | None
    """None when zero-shot CoT or every optimizer is missing."""
    text: str


@dataclass(frozen=True)
class ValueSummary:
    points: tuple[CostPoint, ...]
    verdicts: tuple[Verdict, ...]


def _spend(row: ReportRow) -> tuple[float | None, int]:
    tokens = row.eval_prompt_tokens + row.eval_completion_tokens
    cost = row.eval_cost
    if row.opt_lm_calls is not None:
        tokens += int(row.opt_prompt_tokens or 0) + int(row.opt_completion_tokens or 0)
        cost = None if cost is None or row.opt_cost is None else cost + row.opt_cost
    return cost, tokens


def _point(row: ReportRow, comparator: ReportRow, delta: float | None, p: float | None) -> CostPoint:
    cost, tokens = _spend(row)
    base_cost, base_tokens = _spend(comparator)
    extra_cost = None if cost is None or base_cost is None else cost - base_cost
    extra_tokens = tokens - base_tokens
    return CostPoint(
        scenario=row.scenario, model=row.model, method=row.method, comparator=comparator.method, delta=delta,
        p_value=p, extra_cost=extra_cost, extra_tokens=extra_tokens,
        delta_per_dollar=None if delta is None or extra_cost is None or extra_cost <= 0 else delta / extra_cost,
        delta_per_1k_tokens=None if delta is None or extra_tokens <= 0 else delta / (extra_tokens / 1000),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _verdict(scenario: str, model: str, cot: ReportRow | None, rows: Sequence[tuple[ReportRow, float, float]],
             optimizers: Sequence[str]) -> Verdict:
    where = f"{scenario} · {model}"
    if not optimizers:
        return Verdict(scenario, model, None, f"{where}: no optimizer was evaluated.")
    if cot is None:
        return Verdict(scenario, model, None, f"{where}: zero-shot CoT was not evaluated, so no optimizer can "
                                              "be compared with it.")
    adjusted = holm([p for _, _, p in rows])
    winners = [(r, d, p) for (r, d, _), p in zip(rows, adjusted, strict=True) if d > 0 and p < SIGNIFICANCE_LEVEL]
    family = f"Holm over {len(rows)} optimizer{'s' if len(rows) != 1 else ''}"
    if winners:
        best = max(winners, key=lambda w: w[1])
        names = ", ".join(f"{r.method} (Δ {d:+.3f}, adjusted p {p:.3g})" for r, d, p in winners)
        return Verdict(scenario, model, True, f"{where}: yes — {names} beat{'s' if len(winners) == 1 else ''} "
                                              f"zero-shot CoT significantly ({family}); best {best[0].method}.")
    best_row, best_delta, _ = max(rows, key=lambda x: x[1])
    best_p = adjusted[rows.index(max(rows, key=lambda x: x[1]))]
    return Verdict(scenario, model, False, f"{where}: no — no optimizer beats zero-shot CoT significantly "
                                           f"(best {best_row.method}: Δ {best_delta:+.3f}, adjusted p "
                                           f"{best_p:.3g}; {family}).")


def value_summary(rows: Sequence[ReportRow], results: Sequence[MethodResult], *, seed: int = 0,
                  resamples: int = 2000) -> ValueSummary:
    """Cost per point of every non-baseline method, and the zero-shot-CoT verdict of every (scenario, model)."""
    by_key: Mapping[tuple[str, str, str], ReportRow] = {(r.scenario, r.model, r.method): r for r in rows}
    scores = {(r.scenario, r.model, r.method): r.scores for r in results}
    points: list[CostPoint] = []
    verdicts: list[Verdict] = []
    cells = list(dict.fromkeys((r.scenario, r.model) for r in rows))
    for scenario, model in cells:
        cell = [r for r in rows if (r.scenario, r.model) == (scenario, model)]
        baseline = by_key.get((scenario, model, BASELINE))
        cot = next((by_key[(scenario, model, m)] for m in ZERO_SHOT_COT if (scenario, model, m) in by_key), None)
        tested: list[tuple[ReportRow, float, float]] = []
        for row in cell:
            if row.method == BASELINE:
                continue
            if baseline is not None:
                points.append(_point(row, baseline, row.delta, row.p_value))
            if cot is None or row.method == cot.method:
                continue
            mine, theirs = scores.get((scenario, model, row.method)), scores.get((scenario, model, cot.method))
            if not mine or not theirs or not mine.keys() & theirs.keys():
                continue
            comparison = compare_paired(mine, theirs, seed=_seed(seed, scenario, model, row.method),
                                        resamples=resamples)
            points.append(_point(row, cot, comparison.delta, comparison.p_value))
            if row.method not in _NOT_OPTIMIZERS:
                tested.append((row, comparison.delta, comparison.p_value))
        optimizers = [r.method for r in cell if r.method not in _NOT_OPTIMIZERS]
        verdicts.append(_verdict(scenario, model, cot, tested, optimizers))
    return ValueSummary(points=tuple(points), verdicts=tuple(verdicts))


def _seed(seed: int, *parts: str) -> int:
    return (seed * 1_000_003 + zlib.crc32("\x1f".join((*parts, "vs-cot")).encode("utf-8"))) % 2**63


_HEADERS = ("scenario", "model", "method", "against", "Δ", "p", "extra $", "Δ per $", "extra tokens",
            "Δ per 1k tokens")


def _cells(point: CostPoint) -> list[str]:
    def num(value: float | None, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    return [point.scenario, point.model, point.method, point.comparator, num(point.delta, "+.3f"),
            "–" if point.p_value is None else ("<0.001" if point.p_value < 0.001 else f"{point.p_value:.3f}"),
            num(point.extra_cost, ".3f"), num(point.delta_per_dollar, "+.2e"), f"{point.extra_tokens:,}",
            num(point.delta_per_1k_tokens, "+.2e")]


_EXPLAIN = ("Δ is the method minus the comparator over the instances both were scored on (p: McNemar's exact "
            "test for 0/1 metrics, else the paired bootstrap; not adjusted). Extra spend is the method's "
            "optimization plus evaluation minus the comparator's evaluation; Δ per $ and per 1,000 tokens are "
            "empty where the method costs no more, or a price is unknown (local models cost $0).")


def render_value_markdown(summary: ValueSummary) -> str:
    lines = ["## Cost per point", "", _EXPLAIN, ""]
    lines += [f"- {v.text}" for v in summary.verdicts]
    lines += ["", "| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(p)) + " |" for p in summary.points]
    return "\n".join(lines) + "\n"


def render_value_html(summary: ValueSummary) -> str:
    verdicts = "".join(f'<li class="{"yes" if v.beats_cot else "no"}">{escape(v.text)}</li>' for v in summary.verdicts)
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADERS)
    body = "".join("<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if i >= 4 else f"<td>{escape(c)}</td>"
                                    for i, c in enumerate(_cells(p))) + "</tr>" for p in summary.points)
    return (f'<section id="cost-per-point">\n<h2>Cost per point</h2>\n<p>{escape(_EXPLAIN)}</p>\n'
            f"<ul>{verdicts}</ul>\n<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>\n"
            "</section>")


def value_json(summary: ValueSummary) -> dict[str, Any]:
    return {"cost_per_point": [asdict(p) for p in summary.points],
            "verdicts": [v.text for v in summary.verdicts],
            "beats_zero_shot_cot": [{"scenario": v.scenario, "model": v.model, "beats": v.beats_cot}
                                    for v in summary.verdicts]}
