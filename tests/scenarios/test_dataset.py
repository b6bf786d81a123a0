"""Any HELM scenario as DSPy train/val sets: prompts, gold answers, splits, leakage, folds, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helm_optimizer.errors import ConfigError, DataError, LeakageError, UnknownNameError
from helm_optimizer.scenarios.dataset import STRATEGY_CROSS_FIT, STRATEGY_OFFICIAL, STRATEGY_SCENARIO, load_dataset
from tests.conftest import FIXTURE_DATA, REPO

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"


def test_plugin_scenario_uses_helm_prompt_and_scenario_splits(example_plugin: str, tmp_path: Path) -> None:
    ds = load_dataset("times_tables", plugins=[example_plugin], cache_dir=tmp_path)
    assert ds.strategy == STRATEGY_SCENARIO
    assert ds.test_size == 2 and sorted(ds.eval_ids) == ["test-001", "test-002"]
    assert len(ds.train) + len(ds.val) == 5
    example = next(e for e in ds.train + ds.val if "2 x 3" in e["inputs"])
    # HELM's generation adapter with no in-context examples: instructions, input and output prefix.
    assert example["inputs"] == "Multiply the two numbers. Answer with the product only.\n2 x 3 = ?\nProduct:"
    assert example["output"] == "6"
    assert ds.main_metric == "number_match"  # the plugin's own metric, scored by HELM's metric class
    assert ds.scorer.score(example["inputs"], "6", "6") == 1.0
    assert ds.scorer.score(example["inputs"], "6", "The product is 6.") == 1.0
    assert ds.scorer.score(example["inputs"], "6", " 7 ") == 0.0


def test_head_qa_uses_official_non_test_splits_with_letters(tmp_path: Path) -> None:
    ds = load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path)
    assert ds.strategy == STRATEGY_OFFICIAL
    assert ds.test_size == 60 and len(ds.eval_ids) == 60
    assert len(ds.train) == 36 and len(ds.val) == 24
    assert all(e["output"] in "ABCDE" and len(e["output"]) == 1 for e in ds.train + ds.val)
    prompt = ds.train[0]["inputs"]
    assert prompt.startswith("You are a highly knowledgeable AI assistant specializing in biomedical sciences.")
    assert "\nA. " in prompt and prompt.rstrip().endswith("Answer:")
    assert any("train_HEAD_EN.json" in line for line in ds.provenance)


def test_limits_and_seed_are_deterministic(tmp_path: Path) -> None:
    a = load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path, limit=10, seed=1)
    b = load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path, limit=10, seed=1)
    c = load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path, limit=10, seed=2)
    assert (len(a.train), len(a.val)) == (5, 5)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def _copy_demo(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DEMO_DATA, target)
    return target


def test_leakage_is_refused_and_named(tmp_path: Path) -> None:
    data = _copy_demo(tmp_path)
    head = data / "head_qa" / "HEAD_EN"
    test = json.loads((head / "test_HEAD_EN.json").read_text())
    dev = json.loads((head / "dev_HEAD_EN.json").read_text())
    leaked = next(iter(test["exams"].values()))["data"][0]
    next(iter(dev["exams"].values()))["data"].append(leaked)
    (head / "dev_HEAD_EN.json").write_text(json.dumps(dev))
    with pytest.raises(LeakageError) as info:
        load_dataset("head_qa", data_dir=data, cache_dir=tmp_path / "c")
    message = str(info.value)
    assert "1 exact" in message and leaked["qtext"][:30] in message and "--on-overlap drop" in message
    ds = load_dataset("head_qa", data_dir=data, cache_dir=tmp_path / "c", on_overlap="drop")
    assert any("dropped 1 optimization instances" in note for note in ds.notes)
    assert all(leaked["qtext"] not in e["inputs"] for e in ds.train + ds.val)


def test_leakage_with_reordered_options_is_caught(tmp_path: Path) -> None:
    data = _copy_demo(tmp_path)
    head = data / "head_qa" / "HEAD_EN"
    test = json.loads((head / "test_HEAD_EN.json").read_text())
    train = json.loads((head / "train_HEAD_EN.json").read_text())
    leaked = dict(next(iter(test["exams"].values()))["data"][1])
    leaked["answers"] = list(reversed(leaked["answers"]))
    leaked["qtext"] = leaked["qtext"].upper()
    next(iter(train["exams"].values()))["data"].append(leaked)
    (head / "train_HEAD_EN.json").write_text(json.dumps(train))
    with pytest.raises(LeakageError, match="0 exact, 1 after normalization"):
        load_dataset("head_qa", data_dir=data, cache_dir=tmp_path / "c")


def test_medbullets_is_cross_fitted_without_leakage(tmp_path: Path) -> None:
    folds = [load_dataset("medbullets", data_dir=FIXTURE_DATA, cache_dir=tmp_path, fold=k) for k in (0, 1)]
    assert all(ds.strategy == STRATEGY_CROSS_FIT and ds.num_folds == 2 for ds in folds)
    ids0, ids1 = set(folds[0].eval_ids), set(folds[1].eval_ids)
    assert ids0 and ids1 and not ids0 & ids1 and len(ids0 | ids1) == folds[0].test_size
    for ds in folds:
        evaluated = set(ds.eval_ids)
        assert evaluated  # the agent never sees its own evaluation fold
        assert ds.train or ds.val
    with pytest.raises(DataError, match="Fold 2 does not exist"):
        load_dataset("medbullets", data_dir=FIXTURE_DATA, cache_dir=tmp_path, fold=2)


def test_medcalc_optimizes_the_corrected_metric(tmp_path: Path) -> None:
    ds = load_dataset("medcalc_bench", data_dir=FIXTURE_DATA, cache_dir=tmp_path, fold=0)
    assert ds.main_metric == "medcalc_bench_accuracy_corrected"
    assert ds.strategy == STRATEGY_CROSS_FIT


def test_unknown_run_entry_suggests_close_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("head_qaa", cache_dir=tmp_path)
    assert "Did you mean 'head_qa'" in str(info.value)


def test_malformed_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        load_dataset("head_qa:language", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="arguments its run spec does not take"):
        load_dataset("head_qa:colour=blue", data_dir=DEMO_DATA, cache_dir=tmp_path)


def test_missing_data_file_names_file_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("medec", data_dir=empty, cache_dir=tmp_path)
    assert "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv" in str(info.value)
    assert str(empty) in str(info.value)


def test_split_with_no_instances(tmp_path: Path) -> None:
    plugin = tmp_path / "no_test_plugin.py"
    plugin.write_text(
        "from helm.benchmark.adaptation.adapter_spec import AdapterSpec\n"
        "from helm.benchmark.metrics.common_metric_specs import get_exact_match_metric_specs\n"
        "from helm.benchmark.run_spec import RunSpec, run_spec_function\n"
        "from helm.benchmark.scenarios.scenario import (Scenario, ScenarioSpec, Instance, Input, Output,\n"
        "    Reference, CORRECT_TAG, TRAIN_SPLIT)\n"
        "class OnlyTrain(Scenario):\n"
        "    name = 'only_train'\n    description = 'x'\n    tags = []\n"
        "    def get_instances(self, output_path):\n"
        "        return [Instance(Input(text='q'), [Reference(Output(text='a'), tags=[CORRECT_TAG])],"
        " split=TRAIN_SPLIT)]\n"
        "@run_spec_function('hopt_test_only_train')\n"
        "def spec():\n"
        "    return RunSpec(name='hopt_test_only_train', scenario_spec=ScenarioSpec(class_name="
        "'no_test_plugin.OnlyTrain'), adapter_spec=AdapterSpec(method='generation'),"
        " metric_specs=get_exact_match_metric_specs())\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(DataError, match="no instances in its 'test' split"):
            load_dataset("hopt_test_only_train", plugins=[str(plugin)], metric="exact_match", cache_dir=tmp_path)
    finally:
        sys.path.remove(str(tmp_path))


def test_second_build_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path)
    cached = list((tmp_path / "datasets").glob("scenario-*.pkl.gz"))
    assert len(cached) == 1
    from helm_optimizer.helm import task as helm_task

    def refuse(self: object, cache_root: Path) -> list[object]:
        raise AssertionError("instances should come from the cache")

    monkeypatch.setattr(helm_task.HelmTask, "load_instances", refuse)
    ds = load_dataset("head_qa", data_dir=DEMO_DATA, cache_dir=tmp_path)
    assert ds.test_size == 60
