"""Cost per point and the zero-shot-CoT verdict: pure computations on report rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from helm_optimizer.report.records import MethodResult
from helm_optimizer.report.table import COLUMNS, ReportRow
from helm_optimizer.report.value import holm, value_summary


def _row(method: str, **values: Any) -> ReportRow:
    base: dict[str, Any] = {name: None for name in COLUMNS}
    base.update(scenario="s", model="m", method=method, main_metric="exact_match", split="test", num_folds=1, n=4,
                mean=0.5, ci_low=0.0, ci_high=1.0, helm_mean=0.5, mean_matches_helm=True, eval_lm_calls=4,
                eval_prompt_tokens=1000, eval_completion_tokens=0, eval_cost=0.01, eval_wall_time_s=1.0,
                warnings="", run_dirs=())
    base.update(values)
    return ReportRow(**base)


def _result(method: str, scores: dict[str, float]) -> MethodResult:
    return MethodResult(scenario="s", model="m", method=method, main_metric="exact_match", split="test",
                        num_folds=1, records=(), scores=scores, fold_sizes=(len(scores),), stats_json_means=(None,))


def test_holm_matches_the_step_down_definition() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_delta_per_dollar_and_per_1k_tokens_use_the_extra_spend() -> None:
    ids = [f"i{k}" for k in range(40)]
    base = {i: 0.0 for i in ids}
    cot = {i: float(k < 10) for k, i in enumerate(ids)}
    opt = {i: float(k < 30) for k, i in enumerate(ids)}  # 20 more right than CoT: significant
    rows = [
        _row("baseline", mean=0.0),
        _row("ZeroShotCoT", mean=0.25, delta=0.25, p_value=0.002, eval_prompt_tokens=3000, eval_cost=0.03),
        _row("MIPROv2", mean=0.75, delta=0.75, p_value=1e-6, eval_prompt_tokens=2000, eval_cost=0.02,
             opt_lm_calls=100, opt_prompt_tokens=9000, opt_completion_tokens=1000, opt_cost=0.09),
    ]
    results = [_result("baseline", base), _result("ZeroShotCoT", cot), _result("MIPROv2", opt)]
    summary = value_summary(rows, results, seed=0, resamples=200)
    points = {(p.method, p.comparator): p for p in summary.points}
    vs_base = points[("MIPROv2", "baseline")]
    assert vs_base.extra_cost == pytest.approx(0.11 - 0.01) and vs_base.extra_tokens == 12000 - 1000
    assert vs_base.delta_per_dollar == pytest.approx(0.75 / 0.10)
    assert vs_base.delta_per_1k_tokens == pytest.approx(0.75 / 11)
    vs_cot = points[("MIPROv2", "ZeroShotCoT")]
    assert vs_cot.delta == pytest.approx(0.5) and vs_cot.extra_tokens == 12000 - 3000
    cheaper = points[("ZeroShotCoT", "baseline")]
    assert cheaper.extra_tokens == 2000 and cheaper.delta_per_1k_tokens == pytest.approx(0.25 / 2)
    [verdict] = summary.verdicts
    assert verdict.beats_cot is True and verdict.text.startswith("s · m: yes — MIPROv2")


def test_verdict_says_no_and_why() -> None:
    ids = [f"i{k}" for k in range(10)]
    same = {i: float(k < 5) for k, i in enumerate(ids)}
    rows = [_row("baseline"), _row("ZeroShotCoT"), _row("MIPROv2", opt_lm_calls=1, opt_prompt_tokens=1,
                                                          opt_completion_tokens=0, opt_cost=0.0)]
    results = [_result(m, same) for m in ("baseline", "ZeroShotCoT", "MIPROv2")]
    [verdict] = value_summary(rows, results, resamples=200).verdicts
    assert verdict.beats_cot is False and "no optimizer beats zero-shot CoT significantly" in verdict.text
    no_cot = value_summary([r for r in rows if r.method != "ZeroShotCoT"],
                           [r for r in results if r.method != "ZeroShotCoT"]).verdicts[0]
    assert no_cot.beats_cot is None and "was not evaluated" in no_cot.text
    assert dataclasses.asdict(no_cot)["scenario"] == "s"
