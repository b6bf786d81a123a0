from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from helm_optimizer.naming import METHOD_ZS_COT
from helm_optimizer.report.records import load_records, load_results
from helm_optimizer.report.table import COLUMNS, ReportRow, ReportTable, build_table, method_sort_key


def _table(sweep: Any, resamples: int = 200) -> ReportTable:
    return build_table(load_results(load_records(sweep.output_dir)), seed=0, resamples=resamples)


def _row(table: ReportTable, scenario: str, model: str, method: str) -> ReportRow:
    return next(r for r in table.rows if (r.scenario, r.model, r.method) == (scenario, model, method))


def test_means_match_per_instance_scores_and_helm(sweep: Any) -> None:
    table = _table(sweep)
    assert len(table.rows) == 12
    for row in table.rows:
        key = (row.scenario, row.model, row.method)
        expected = sweep.scores[key]
        assert row.n == len(expected)
        assert row.mean == pytest.approx(float(np.mean(list(expected.values()))), abs=1e-12)
        assert math.isclose(row.mean, sweep.helm_means[key], abs_tol=1e-9)
        assert math.isclose(row.helm_mean, sweep.helm_means[key], abs_tol=1e-12)
        assert row.mean_matches_helm
        assert row.warnings == ""
        assert row.ci_low <= row.mean <= row.ci_high


def test_row_order_folds_and_usage(sweep: Any) -> None:
    table = _table(sweep)
    assert [(r.scenario, r.model, r.method) for r in table.rows[:3]] == [
        ("head_qa", "meta/llama-3-8b", "baseline"),
        ("head_qa", "meta/llama-3-8b", METHOD_ZS_COT),
        ("head_qa", "meta/llama-3-8b", "MIPROv2"),
    ]
    folded = _row(table, "head_qa", "openai/gpt-4o", "MIPROv2")
    assert (folded.num_folds, folded.n, folded.n_paired) == (2, 60, 60)
    assert folded.eval_lm_calls == 60 and folded.eval_wall_time_s == pytest.approx(3.0)
    assert folded.opt_lm_calls == 1800 and folded.opt_cost == pytest.approx(1.0)
    assert len(folded.run_dirs) == 2 and folded.run_dirs[0].endswith("fold=0")
    plain = _row(table, "med_qa", "openai/gpt-4o", METHOD_ZS_COT)
    assert plain.opt_lm_calls is None and plain.eval_lm_calls == 40


def test_comparisons_use_the_right_test(sweep: Any) -> None:
    table = _table(sweep)
    for row in table.rows:
        if row.method == "baseline":
            assert row.delta is None and row.p_value is None and row.significant is None
            assert row.p_value_adjusted is None
            continue
        baseline = sweep.scores[(row.scenario, row.model, "baseline")]
        mine = sweep.scores[(row.scenario, row.model, row.method)]
        expected_delta = np.mean([mine[i] - baseline[i] for i in baseline])
        assert row.delta == pytest.approx(expected_delta, abs=1e-12)
        assert row.delta_ci_low is not None and row.delta_ci_high is not None
        assert row.delta_ci_low <= row.delta <= row.delta_ci_high
        assert row.p_value is not None and row.p_value_adjusted is not None
        assert row.p_value_adjusted >= row.p_value and row.significant == (row.p_value_adjusted < 0.05)
        if row.scenario == "med_qa" and (row.model, row.method) != ("openai/gpt-4o", METHOD_ZS_COT):
            assert row.test == "mcnemar-exact"
            assert row.mcnemar_b is not None and row.mcnemar_c is not None
        else:  # continuous metric, or a 0.5 from averaging two trials
            assert row.test == "paired-bootstrap" and row.mcnemar_b is None


def test_table_is_deterministic_for_a_seed(sweep: Any) -> None:
    results = load_results(load_records(sweep.output_dir))
    first = build_table(results, seed=3, resamples=100)
    assert first == build_table(results, seed=3, resamples=100)
    assert first != build_table(results, seed=4, resamples=100)


def test_ranking_flips_are_found(sweep: Any) -> None:
    table = _table(sweep)
    flips = [(f.scenario, f.method, f.model_a, f.model_b) for f in table.flips]
    assert flips == [("med_qa", "MIPROv2", "openai/gpt-4o", "meta/llama-3-8b")]
    ranking = next(r for r in table.rankings if (r.scenario, r.method) == ("med_qa", "MIPROv2"))
    assert ranking.models == ("meta/llama-3-8b", "openai/gpt-4o")


def test_mean_mismatch_is_flagged_not_hidden(sweep: Any) -> None:
    path = sweep.records[("med_qa", "openai/gpt-4o", "MIPROv2", None)]
    data = json.loads(path.read_text())
    data["mean"] += 0.01
    path.write_text(json.dumps(data))
    row = _row(_table(sweep), "med_qa", "openai/gpt-4o", "MIPROv2")
    assert not row.mean_matches_helm
    assert "differs from HELM's aggregate" in row.warnings
    assert "stats.json mean" in row.warnings


def test_missing_fold_and_missing_baseline_are_flagged(sweep: Any) -> None:
    sweep.records[("head_qa", "openai/gpt-4o", METHOD_ZS_COT, 1)].unlink()
    for fold in (0, 1):
        sweep.records[("head_qa", "meta/llama-3-8b", "baseline", fold)].unlink()
    table = _table(sweep)
    partial = _row(table, "head_qa", "openai/gpt-4o", METHOD_ZS_COT)
    assert partial.n == 30 and "only fold(s) 0 of 2" in partial.warnings
    assert "compared on 30 common instances" in partial.warnings
    orphan = _row(table, "head_qa", "meta/llama-3-8b", "MIPROv2")
    assert orphan.delta is None and "no baseline" in orphan.warnings


def test_columns_follow_the_row_fields() -> None:
    assert COLUMNS[:3] == ("scenario", "model", "method")
    assert "warnings" in COLUMNS and "mean_matches_helm" in COLUMNS and COLUMNS[-1] == "run_dirs"


def test_unknown_cost_stays_unknown_through_folds_and_rendering(sweep: Any) -> None:
    from helm_optimizer.report.render import _cost_cells

    path = sweep.records[("head_qa", "openai/gpt-4o", "MIPROv2", 1)]
    data = json.loads(path.read_text())
    data["cost"] = None  # a model without a known price
    path.write_text(json.dumps(data))
    table = _table(sweep)
    folded = _row(table, "head_qa", "openai/gpt-4o", "MIPROv2")
    assert folded.eval_cost is None and folded.eval_lm_calls == 60
    assert _cost_cells(folded)[5] == "–"
    priced = _row(table, "head_qa", "openai/gpt-4o", METHOD_ZS_COT)
    assert priced.eval_cost == pytest.approx(0.6) and _cost_cells(priced)[5] == "0.600"


def test_methods_sort_in_the_order_the_evaluator_writes_them() -> None:
    """Baseline, then the zero-shot programs, then optimizers: by the names evaluation records carry."""
    from helm_optimizer.evaluate import DEFAULT_METHODS

    shuffled = ["MIPROv2", *reversed(DEFAULT_METHODS), "BootstrapFewShot"]
    assert sorted(shuffled, key=method_sort_key) == [*DEFAULT_METHODS, "BootstrapFewShot", "MIPROv2"]
