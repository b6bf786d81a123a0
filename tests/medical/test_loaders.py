"""Building the four test sets from the small synthetic fixtures, and matching HELM's own code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dacite
import pytest
from helm.benchmark.scenarios import headqa_scenario, medcalc_bench_scenario
from helm.benchmark.scenarios.headqa_scenario import HeadQAScenario
from helm.benchmark.scenarios.medbullets_scenario import MedBulletsScenario
from helm.benchmark.scenarios.medcalc_bench_scenario import MedCalcBenchScenario
from helm.benchmark.scenarios.medec_scenario import MedecScenario
from helm.benchmark.scenarios.scenario import CORRECT_TAG, TEST_SPLIT, Instance
from helm.common.general import asdict_without_nones
from helm.common.object_spec import ObjectSpec, create_object

from helm_optimizer.errors import DataError
from helm_optimizer.scenarios.medical import (
    DATA_DIR_ENV,
    MEDICAL_BENCHMARKS,
    LocalHeadQAScenario,
    LocalMedBulletsScenario,
    LocalMedCalcBenchScenario,
    LocalMedecScenario,
    head_qa_rows,
)
from helm_optimizer.scenarios.medical._files import read_csv_records

from .conftest import as_dicts


def _hf_medcalc_rows(path: Path) -> list[dict[str, Any]]:
    """What HF gives for the CSV: the same strings, with ``Row Number``/``Calculator ID`` as int."""
    rows = read_csv_records(path, ())
    return [
        {**row, "Row Number": int(row["Row Number"]), "Calculator ID": int(row["Calculator ID"])}
        for row in rows
    ]


# ---- medcalc_bench ---------------------------------------------------------------------------------


def test_medcalc_fixture_instances(fixture_dir: Path, tmp_path: Path) -> None:
    instances = LocalMedCalcBenchScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert [i.id for i in instances] == [str(n) for n in range(1, 9)]
    assert {i.split for i in instances} == {TEST_SPLIT}
    first = instances[0]
    assert first.input.text == (
        "Patient note: A 64-year-old man, weight 70 kg, presents with fatigue.\n"
        "Serum creatinine is 1.6 mg/dL.\n\n"
        "Question: What is the patient's Creatinine Clearance using the Cockcroft-Gault Equation "
        "in terms of mL/min?\n"
    )
    assert [(r.output.text, r.tags) for r in first.references] == [("46.181", [CORRECT_TAG])]
    assert first.extra_data == {"category": "lab", "upper_limit": "48.49005", "lower_limit": "43.87195"}
    categories = [i.extra_data["category"] for i in instances]
    assert categories == ["lab", "physical", "risk", "date", "date", "dosage", "severity", "diagnosis"]
    assert instances[4].references[0].output.text == "('10 weeks', '3 days')"


def test_medcalc_matches_helm_loader(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HELM's own get_instances fed the HF-shaped rows gives the same instances (ids: int -> str)."""
    rows = _hf_medcalc_rows(fixture_dir / "medcalc_bench" / "test_data.csv")
    monkeypatch.setattr(medcalc_bench_scenario, "load_dataset", lambda path: {"test": rows})
    helm = as_dicts(MedCalcBenchScenario().get_instances(str(tmp_path)))
    ours = as_dicts(LocalMedCalcBenchScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path)))
    assert [h["id"] for h in helm] == list(range(1, 9))  # HELM passes HF's int through
    for h in helm:
        h["id"] = str(h["id"])
    assert ours == helm


def test_medcalc_str_ids_survive_helms_instance_cache(fixture_dir: Path, tmp_path: Path) -> None:
    """HELM reloads cached instances with dacite, which rejects the int id HF gives; ours are str."""
    instances = LocalMedCalcBenchScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    as_json = json.loads(json.dumps([asdict_without_nones(i) for i in instances]))
    reloaded = [dacite.from_dict(Instance, d) for d in as_json]
    assert as_dicts(reloaded) == as_dicts(instances)
    with pytest.raises(dacite.WrongTypeError):
        dacite.from_dict(Instance, {**as_json[0], "id": 1})


def test_medcalc_other_version_is_refused_locally(fixture_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"v1\.0.*version=v1\.2"):
        LocalMedCalcBenchScenario(version="v1.2", data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    v10 = LocalMedCalcBenchScenario(version="v1.0", data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert len(v10) == 8


# ---- medec -----------------------------------------------------------------------------------------


def test_medec_fixture_instances(fixture_dir: Path, tmp_path: Path) -> None:
    instances = LocalMedecScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    # Five CSV records, two of them all empty (HELM skips them).
    assert len(instances) == 3
    assert [i.references[0].output.text for i in instances] == [
        "3 He is diagnosed with community-acquired pneumonia.",
        "CORRECT",
        "1 He is treated with a single dose of oral dexamethasone.",
    ]
    assert (
        instances[0].input.text.splitlines()[0] == "0 A 34-year-old man reports a week of productive cough."
    )
    assert "\r" not in instances[0].input.text  # universal newlines, as HELM's open() gives
    assert instances[1].input.text.endswith("primary coronary intervention.")  # stripped
    assert all(i.id is None and i.extra_data is None and i.split == TEST_SPLIT for i in instances)


def test_medec_matches_helm_loader(fixture_dir: Path, tmp_path: Path) -> None:
    """HELM's get_instances skips the download when its target file exists: run it on our fixture."""
    helm_dir = tmp_path / "helm"
    helm_dir.mkdir()
    shutil.copy(
        fixture_dir / "medec" / "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",
        helm_dir / "medec_test.csv",
    )
    helm = MedecScenario().get_instances(str(helm_dir))
    ours = LocalMedecScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert as_dicts(ours) == as_dicts(helm)


# ---- head_qa ---------------------------------------------------------------------------------------


def test_head_qa_rows_follow_the_hf_mapping(fixture_dir: Path) -> None:
    rows = head_qa_rows(fixture_dir / "head_qa" / "HEAD_EN" / "test_HEAD_EN.json")
    assert len(rows) == 4
    assert rows[0] == {
        "name": "Cuaderno_2016_1_B",
        "year": "2016",
        "category": "biology",
        "qid": 1,
        "qtext": "The enzyme that unwinds the DNA double helix is:",
        "ra": 2,
        "image": None,
        "answers": [
            {"aid": 1, "atext": "DNA ligase"},
            {"aid": 2, "atext": "Helicase"},
            {"aid": 3, "atext": "Primase"},
            {"aid": 4, "atext": "Topoisomerase I"},
        ],
    }
    assert rows[1]["image"] == "images/B_2016_2.jpg"


def test_head_qa_fixture_instances(fixture_dir: Path, tmp_path: Path) -> None:
    instances = LocalHeadQAScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert [i.input.text for i in instances] == [
        "The enzyme that unwinds the DNA double helix is:",
        "Hand hygiene with alcohol-based rub should last at least:",
        "Which drug reverses heparin?",
    ]  # the image question is skipped (SKIP_VQA)
    first = instances[0]
    assert [(r.output.text, r.tags) for r in first.references] == [
        ("DNA ligase", []),
        ("Helicase", [CORRECT_TAG]),
        ("Primase", []),
        ("Topoisomerase I", []),
    ]
    assert first.extra_data == {"id": 1, "name": "Cuaderno_2016_1_B", "category": "biology", "year": "2016"}
    assert all(i.id is None and i.split == TEST_SPLIT for i in instances)


def test_head_qa_category_filter(fixture_dir: Path, tmp_path: Path) -> None:
    scenario = LocalHeadQAScenario(category="nursery", data_dir=str(fixture_dir))
    assert [i.extra_data["category"] for i in scenario.get_instances(str(tmp_path))] == ["nursery"]


@pytest.mark.parametrize("category", [None, "medicine"])
def test_head_qa_matches_helm_loader(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, category: str | None
) -> None:
    """HELM's get_instances handed the HF rows of the same file directly gives the same instances: the
    local Hugging Face dataset ours hands it carries every value and type over."""
    rows = head_qa_rows(fixture_dir / "head_qa" / "HEAD_EN" / "test_HEAD_EN.json")
    with monkeypatch.context() as patched:
        patched.setattr(headqa_scenario, "load_dataset", lambda path, language: {"test": rows})
        helm = HeadQAScenario(category=category).get_instances(str(tmp_path / "helm"))
    ours = LocalHeadQAScenario(category=category, data_dir=str(fixture_dir)).get_instances(str(tmp_path / "ours"))
    assert as_dicts(ours) == as_dicts(helm)


def test_head_qa_instances_come_from_helms_own_loop(fixture_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Test, train and valid instances are all built by ``HeadQAScenario.get_instances`` (from a local dataset)."""
    from helm_optimizer.scenarios.medical import head_qa_optimization_data

    calls: list[tuple[str, str]] = []
    real = HeadQAScenario.get_instances

    def spy(self: HeadQAScenario, output_path: str) -> list[Any]:
        calls.append((type(self).__name__, self.HUGGING_FACE_DATASET_PATH))
        return real(self, output_path)

    monkeypatch.setattr(HeadQAScenario, "get_instances", spy)
    test = LocalHeadQAScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    data = head_qa_optimization_data(str(fixture_dir))
    assert len(calls) == 3 and all(Path(path).name.startswith("head_qa_en_") for _, path in calls)
    assert calls[0][0] == "LocalHeadQAScenario" and Path(calls[0][1]).is_relative_to(tmp_path)
    assert {i.split for i in test} == {TEST_SPLIT} and data.train and data.valid
    assert {i.split for i in data.train} == {"train"} and {i.split for i in data.valid} == {"valid"}


# ---- medbullets ------------------------------------------------------------------------------------


def test_medbullets_fixture_instances(fixture_dir: Path, tmp_path: Path) -> None:
    instances = LocalMedBulletsScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert len(instances) == 3
    first = instances[0]
    assert first.input.text.startswith("A 25-year-old man has sudden pleuritic chest pain")
    assert [r.output.text for r in first.references] == [
        "D-dimer",
        "CT pulmonary angiography",
        "Echocardiography",
        "Ventilation-perfusion scan",
        "Chest radiograph",
    ]
    assert [r.is_correct for r in first.references] == [False, True, False, False, False]
    assert [next(n for n, r in enumerate(i.references) if r.is_correct) for i in instances] == [1, 2, 3]


def test_medbullets_matches_helm_loader(fixture_dir: Path, tmp_path: Path) -> None:
    helm_dir = tmp_path / "helm"
    helm_dir.mkdir()
    shutil.copy(fixture_dir / "medbullets" / "medbullets_op5.csv", helm_dir / "medbullets_op5.csv")
    helm = MedBulletsScenario().get_instances(str(helm_dir))
    ours = LocalMedBulletsScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path))
    assert as_dicts(ours) == as_dicts(helm)


# ---- data directory resolution and HELM integration ------------------------------------------------


def test_env_var_supplies_the_data_dir(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(fixture_dir))
    assert len(LocalMedBulletsScenario().get_instances(str(tmp_path))) == 3


def test_files_directly_in_the_data_dir(fixture_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(fixture_dir / "medbullets" / "medbullets_op5.csv", flat)
    shutil.copytree(fixture_dir / "head_qa" / "HEAD_EN", flat / "HEAD_EN")
    assert len(LocalMedBulletsScenario(data_dir=str(flat)).get_instances(str(tmp_path))) == 3
    assert len(LocalHeadQAScenario(data_dir=str(flat)).get_instances(str(tmp_path))) == 3


def test_no_data_dir_defers_to_helm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    called: list[str] = []

    def fake(self: object, output_path: str) -> list[object]:
        called.append(output_path)
        return []

    monkeypatch.setattr(MedBulletsScenario, "get_instances", fake)
    assert LocalMedBulletsScenario().get_instances(str(tmp_path)) == []
    assert called == [str(tmp_path)]


@pytest.mark.parametrize("name", sorted(MEDICAL_BENCHMARKS))
def test_registry_classes_are_created_by_helm(name: str, fixture_dir: Path, tmp_path: Path) -> None:
    entry = MEDICAL_BENCHMARKS[name]
    helm_scenario = create_object(ObjectSpec(class_name=entry.profile.helm_scenario_class, args={}))
    helm_class = helm_scenario.__class__
    scenario = create_object(
        ObjectSpec(class_name=entry.profile.local_scenario_class, args={"data_dir": str(fixture_dir)})
    )
    assert isinstance(scenario, helm_class)
    assert scenario.name == name
    assert scenario.definition_path == helm_scenario.definition_path  # a link to HELM's loader
    assert scenario.get_instances(str(tmp_path))
    for relative in entry.profile.test_files:
        assert (fixture_dir / relative).is_file()
    if entry.profile.corrected_metric_class is not None:
        assert create_object(ObjectSpec(class_name=entry.profile.corrected_metric_class, args={})).get_metadata()
