"""Official non-test optimization data, the benchmark registry and the overlap checks."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from helm.benchmark.scenarios.scenario import TRAIN_SPLIT, VALID_SPLIT

from helm_optimizer.errors import ConfigError, UnknownNameError
from helm_optimizer.scenarios.medical import (
    MEDICAL_BENCHMARKS,
    LocalHeadQAScenario,
    LocalMedecScenario,
    OptimizationData,
    find_overlap,
    medbullets_overlap,
    medcalc_bench_optimization_data,
    medec_optimization_data,
    normalize_text,
    optimization_instances,
)
from helm_optimizer.scenarios.overlap import OverlapReport

# ---- overlap ---------------------------------------------------------------------------------------


def test_normalize_text() -> None:
    assert normalize_text("  The  Heart's\tVALVES:\n") == "the heart s valves"
    assert normalize_text("WBC > 12,000 cells/mm^3") == "wbc > 12 000 cells mm^3"
    assert normalize_text("a\u00a0b") == "a b"


def test_find_overlap_counts_exact_and_normalized() -> None:
    report = find_overlap(
        ["Alpha beta.", "alpha  BETA", "gamma", "Delta!"], ["Alpha beta.", "delta", "omega"]
    )
    assert report == OverlapReport(
        candidates=4, test=3, exact=1, normalized=3, examples=("Alpha beta.", "alpha  BETA", "Delta!")
    )
    assert report.has_overlap
    assert report.normalized_fraction == 0.75
    assert "3 of 4 candidates" in report.summary()


def test_find_overlap_limits_examples_and_handles_empty() -> None:
    assert len(find_overlap([str(n) for n in range(20)], [str(n) for n in range(20)]).examples) == 5
    empty = find_overlap([], ["x"])
    assert (empty.candidates, empty.normalized, empty.exact_fraction, empty.has_overlap) == (0, 0, 0.0, False)


def test_medbullets_overlap_on_fixture(fixture_dir: Path) -> None:
    report = medbullets_overlap(str(fixture_dir))
    assert (report.candidates, report.test, report.exact, report.normalized) == (3, 3, 1, 2)


# ---- per-benchmark optimization data ---------------------------------------------------------------


def test_head_qa_fixture(fixture_dir: Path, tmp_path: Path) -> None:
    data = optimization_instances("head_qa", str(fixture_dir))
    assert [i.input.text for i in data.train] == [
        "Which organelle synthesizes ATP by oxidative phosphorylation?",
        "First-line treatment of anaphylaxis is:",
    ]  # the image question is skipped, as in the test split
    assert {len(i.references) for i in data.train} == {5}
    assert {i.split for i in data.train} == {TRAIN_SPLIT}
    assert [i.input.text for i in data.valid] == ["The most common cause of community-acquired pneumonia is:"]
    assert {i.split for i in data.valid} == {VALID_SPLIT}
    assert data.sources == [
        "head_qa train_HEAD_EN.json (3 questions, 2 without image, 2 kept)",
        "head_qa dev_HEAD_EN.json (2 questions, 1 without image, 1 kept)",
    ]
    # Same layout as the test instances.
    test = LocalHeadQAScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert data.train[1].extra_data.keys() == test[0].extra_data.keys()
    assert [r.is_correct for r in data.train[1].references] == [False, True, False, False, False]


def test_head_qa_category_filter(fixture_dir: Path) -> None:
    data = optimization_instances("head_qa", str(fixture_dir), category="medicine")
    assert [i.extra_data["category"] for i in data.train + data.valid] == ["medicine", "medicine"]


def test_medec_without_training_file(fixture_dir: Path, tmp_path: Path) -> None:
    data = medec_optimization_data(str(fixture_dir))
    assert data.train == []
    assert [i.references[0].output.text for i in data.valid] == [
        "CORRECT",
        "2 He is diagnosed with central retinal artery occlusion.",
    ]
    assert {i.split for i in data.valid} == {VALID_SPLIT}
    assert "MEDEC-Full-TrainingSet-with-ErrorType.csv" in data.note and "train is empty" in data.note
    assert data.sources == [
        "medec MEDEC-MS-ValidationSet-with-GroundTruth-and-ErrorType.csv "
        "(2 notes, 1 with an error, 1 correct)"
    ]


def test_medec_with_training_file(fixture_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(fixture_dir / "medec", data_dir / "medec")
    shutil.copy(
        fixture_dir / "medec" / "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",
        data_dir / "medec" / "MEDEC-Full-TrainingSet-with-ErrorType.csv",
    )
    data = medec_optimization_data(str(data_dir))
    assert len(data.train) == 3 and {i.split for i in data.train} == {TRAIN_SPLIT}
    assert len(data.valid) == 2
    assert data.sources[0].startswith("medec MEDEC-Full-TrainingSet-with-ErrorType.csv (3 notes")
    # Built exactly like the test instances, only the split differs.
    test = LocalMedecScenario(data_dir=str(data_dir)).get_instances(str(tmp_path))
    assert [(i.input.text, i.references) for i in data.train] == [(i.input.text, i.references) for i in test]


def test_medcalc_without_train_file(fixture_dir: Path) -> None:
    data = medcalc_bench_optimization_data(str(fixture_dir))
    assert data == OptimizationData(
        train=[],
        valid=[],
        sources=[],
        note="no official non-test split available; cross-fit on the test split",
    )
    assert data.is_empty


@pytest.mark.parametrize("zipped", [False, True])
def test_medcalc_with_train_file(fixture_dir: Path, tmp_path: Path, zipped: bool) -> None:
    data_dir = tmp_path / "data" / "medcalc_bench"
    data_dir.mkdir(parents=True)
    source = fixture_dir / "medcalc_bench" / "test_data.csv"
    if zipped:
        with zipfile.ZipFile(data_dir / "train_data.csv.zip", "w") as archive:
            archive.write(source, "train_data.csv")
    else:
        shutil.copy(source, data_dir / "train_data.csv")
    data = medcalc_bench_optimization_data(str(tmp_path / "data"))
    assert len(data.train) == 8 and data.valid == []
    assert {i.split for i in data.train} == {TRAIN_SPLIT}
    assert data.train[0].extra_data == {
        "category": "lab",
        "upper_limit": "48.49005",
        "lower_limit": "43.87195",
    }
    assert data.sources == [f"medcalc_bench train_data.csv{'.zip' if zipped else ''} (8 rows)"]


def test_medbullets_has_no_split(fixture_dir: Path) -> None:
    data = optimization_instances("medbullets", str(fixture_dir))
    assert data.is_empty and "op4" in data.note and "Cross-fit" in data.note


# ---- registry --------------------------------------------------------------------------------------


def test_registry_entries() -> None:
    assert sorted(MEDICAL_BENCHMARKS) == ["head_qa", "medbullets", "medcalc_bench", "medec"]
    for name, entry in MEDICAL_BENCHMARKS.items():
        assert entry.name == name
        assert entry.profile.license and entry.profile.source
    assert MEDICAL_BENCHMARKS["medcalc_bench"].profile.corrected_metric_class == (
        "helm_optimizer.metrics.medcalc.MedCalcBenchCorrectedMetric"
    )
    assert MEDICAL_BENCHMARKS["head_qa"].profile.corrected_metric_class is None


def test_dispatcher_rejects_unknown_names(fixture_dir: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'head_qa'"):
        optimization_instances("headqa", str(fixture_dir))
    with pytest.raises(ConfigError, match="takes no scenario argument"):
        optimization_instances("medec", str(fixture_dir), language="en")


# ---- real data -------------------------------------------------------------------------------------


def test_real_optimization_data(real_data_dir: Path) -> None:
    head_qa = optimization_instances("head_qa", str(real_data_dir))
    assert (len(head_qa.train), len(head_qa.valid)) == (2589, 1336)
    assert (
        head_qa.sources[0] == "head_qa train_HEAD_EN.json (2,657 questions, 2,589 without image, 2,589 kept)"
    )
    medec = optimization_instances("medec", str(real_data_dir))
    assert (len(medec.train), len(medec.valid)) == (0, 574)
    assert sum(i.references[0].output.text != "CORRECT" for i in medec.valid) == 319
    assert optimization_instances("medcalc_bench", str(real_data_dir)).is_empty


def test_real_overlaps(real_data_dir: Path, tmp_path: Path) -> None:
    """The figures reported for leakage: none of these is a clean split except MEDEC."""
    op4_in_op5 = medbullets_overlap(str(real_data_dir))
    assert (op4_in_op5.candidates, op4_in_op5.exact, op4_in_op5.normalized) == (308, 308, 308)

    head_qa = optimization_instances("head_qa", str(real_data_dir))
    test = [
        i.input.text for i in LocalHeadQAScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    ]
    train = find_overlap([i.input.text for i in head_qa.train], test)
    dev = find_overlap([i.input.text for i in head_qa.valid], test)
    assert (train.exact, train.normalized) == (17, 18)  # short generic stems such as "The glucocorticoids:"
    assert (dev.exact, dev.normalized) == (12, 14)

    medec = optimization_instances("medec", str(real_data_dir))
    medec_test = [
        i.input.text for i in LocalMedecScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    ]
    assert find_overlap([i.input.text for i in medec.valid], medec_test).normalized == 0


# ---- online MedCalc-Bench: train and test from one release -------------------------------------------


def _medcalc_rows(n: int, answer: str = "1") -> list[dict[str, str]]:
    return [{"Row Number": str(i), "Calculator ID": "1", "Category": "lab", "Patient Note": f"note {i}",
             "Question": "q?", "Ground Truth Answer": answer, "Lower Limit": "0", "Upper Limit": "2"}
            for i in range(1, n + 1)]


def _fake_hub(monkeypatch: pytest.MonkeyPatch, splits: dict[tuple[str, str], list[dict[str, str]]]) -> list[str]:
    import datasets

    asked: list[str] = []

    def load_dataset(name: str, split: str) -> list[dict[str, str]]:
        asked.append(f"{name}:{split}")
        return splits[(name, split)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def test_online_medcalc_refuses_train_from_another_release(monkeypatch: pytest.MonkeyPatch) -> None:
    from helm_optimizer.errors import DataError

    _fake_hub(monkeypatch, {("ncbi/MedCalc-Bench", "test"): _medcalc_rows(1100),
                            ("ncbi/MedCalc-Bench-v1.0", "test"): _medcalc_rows(1047),
                            ("ncbi/MedCalc-Bench-v1.0", "train"): _medcalc_rows(5)})
    with pytest.raises(DataError, match=r"different releases.*version="):
        medcalc_bench_optimization_data(None)


def test_online_medcalc_accepts_one_release(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_hub(monkeypatch, {("ncbi/MedCalc-Bench", "test"): _medcalc_rows(3),
                                    ("ncbi/MedCalc-Bench-v1.0", "test"): list(reversed(_medcalc_rows(3))),
                                    ("ncbi/MedCalc-Bench-v1.0", "train"): _medcalc_rows(5),
                                    ("ncbi/MedCalc-Bench-v1.2", "train"): _medcalc_rows(4)})
    data = medcalc_bench_optimization_data(None)
    assert len(data.train) == 5 and "checked" in data.sources[1]
    assert len(medcalc_bench_optimization_data(None, version="v1.2").train) == 4  # one repository: no check
    assert asked[-1] == "ncbi/MedCalc-Bench-v1.2:train"
