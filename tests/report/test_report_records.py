from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.errors import DataError
from helm_optimizer.naming import METHOD_ZS_COT
from helm_optimizer.report.records import (
    load_helm_aggregate,
    load_instance_scores,
    load_records,
    load_results,
    merge_folds,
)


def test_load_records_reads_every_record(sweep: Any) -> None:
    records = load_records(sweep.output_dir)
    assert len(records) == len(sweep.records) == 2 * 3 + 2 * 3 * 2
    folded = [r for r in records if r.scenario == "head_qa"]
    assert {r.fold for r in folded} == {0, 1}
    assert all(r.num_folds == 2 for r in folded)
    assert all(r.run_dir.is_dir() and r.run_dir.is_absolute() for r in records)
    assert all((r.optimization is None) == (r.method != "MIPROv2") for r in records)


def test_absolute_run_dir_is_accepted(sweep: Any) -> None:
    key = ("med_qa", "openai/gpt-4o", "baseline", None)
    path = sweep.records[key]
    data = json.loads(path.read_text())
    data["run_dir"] = str(sweep.run_dirs[key].resolve())
    path.write_text(json.dumps(data))
    record = next(r for r in load_records(sweep.output_dir) if r.path == path)
    assert record.run_dir == sweep.run_dirs[key].resolve()


def test_instance_scores_average_trials_and_skip_perturbations(sweep: Any) -> None:
    key = ("med_qa", "openai/gpt-4o", METHOD_ZS_COT)
    scores = load_instance_scores(sweep.run_dirs[(*key, None)], "exact_match", "test")
    assert scores == sweep.scores[key]
    assert scores["id0000"] == 0.5
    assert load_helm_aggregate(sweep.run_dirs[(*key, None)], "exact_match", "test") == pytest.approx(
        sweep.helm_means[key], abs=1e-12
    )


def test_instance_scores_missing_metric_is_a_data_error(sweep: Any) -> None:
    run_dir = sweep.run_dirs[("med_qa", "openai/gpt-4o", "baseline", None)]
    with pytest.raises(DataError, match="no 'rouge_l' stat"):
        load_instance_scores(run_dir, "rouge_l", "test")


def test_missing_per_instance_stats_names_the_file(sweep: Any) -> None:
    run_dir = sweep.run_dirs[("med_qa", "openai/gpt-4o", "baseline", None)]
    (run_dir / "per_instance_stats.json").unlink()
    with pytest.raises(DataError, match=r"per_instance_stats\.json"):
        load_results(load_records(sweep.output_dir))


def test_merge_folds_counts_all_instances(sweep: Any) -> None:
    results = {(r.scenario, r.model, r.method): r for r in load_results(load_records(sweep.output_dir))}
    assert len(results) == 12
    folded = results[("head_qa", "meta/llama-3-8b", "MIPROv2")]
    assert len(folded.scores) == 60
    assert folded.fold_sizes == (30, 30)
    assert folded.folds_present == (0, 1)
    assert dict(folded.scores) == sweep.scores[("head_qa", "meta/llama-3-8b", "MIPROv2")]


def test_merge_folds_rejects_repeated_instance_ids() -> None:
    assert merge_folds([("a", {"x": 1.0}), ("b", {"y": 0.0})]) == {"x": 1.0, "y": 0.0}
    with pytest.raises(DataError, match="'x' appears in two folds \\(run-a and run-b\\)"):
        merge_folds([("run-a", {"x": 1.0}), ("run-b", {"x": 0.0})])


def test_overlapping_fold_runs_are_rejected(sweep: Any) -> None:
    key = ("head_qa", "openai/gpt-4o", METHOD_ZS_COT)
    fold0, fold1 = sweep.run_dirs[(*key, 0)], sweep.run_dirs[(*key, 1)]
    for name in ("per_instance_stats.json", "stats.json"):
        shutil.copy(fold0 / name, fold1 / name)
    with pytest.raises(DataError, match="appears in two folds") as info:
        load_results(load_records(sweep.output_dir))
    assert str(fold1) in str(info.value)


def test_no_records_is_a_data_error(tmp_path: Path) -> None:
    message = "No evaluation records under OUTPUT_DIR/evaluations; run `helm-optimizer sweep CONFIG` first."
    with pytest.raises(DataError) as info:
        load_records(tmp_path)
    assert str(info.value) == message
    (tmp_path / "evaluations" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="No evaluation records"):
        load_records(tmp_path)


def test_corrupt_record_names_the_file(sweep: Any) -> None:
    path = sweep.records[("med_qa", "openai/gpt-4o", "MIPROv2", None)]
    path.write_text('{"scenario": "med_qa", ')
    with pytest.raises(DataError) as info:
        load_records(sweep.output_dir)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key", ["main_metric", "run_dir", "mean"])
def test_record_missing_key_names_file_and_key(sweep: Any, key: str) -> None:
    path = sweep.records[("med_qa", "openai/gpt-4o", "MIPROv2", None)]
    data = json.loads(path.read_text())
    del data[key]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        load_records(sweep.output_dir)
    assert str(path) in str(info.value) and repr(key) in str(info.value)


def test_record_with_bad_types_is_rejected(sweep: Any) -> None:
    path = sweep.records[("head_qa", "openai/gpt-4o", "MIPROv2", 0)]
    data = json.loads(path.read_text())
    data["fold"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="'fold' must be an integer in \\[0, 2\\)"):
        load_records(sweep.output_dir)
    data["fold"], data["count"] = 0, "many"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="'count' Input should be a valid integer"):
        load_records(sweep.output_dir)


def test_missing_run_dir_names_it(sweep: Any) -> None:
    key = ("head_qa", "meta/llama-3-8b", "baseline", 1)
    shutil.rmtree(sweep.run_dirs[key])
    with pytest.raises(DataError) as info:
        load_records(sweep.output_dir)
    message = str(info.value)
    assert str(sweep.run_dirs[key]) in message and str(sweep.records[key]) in message


def test_duplicate_records_for_one_run_are_rejected(sweep: Any) -> None:
    path = sweep.records[("med_qa", "openai/gpt-4o", "MIPROv2", None)]
    copy = path.with_name("copy.json")
    copy.write_text(path.read_text())
    with pytest.raises(DataError, match="describe the same run"):
        load_results(load_records(sweep.output_dir))
