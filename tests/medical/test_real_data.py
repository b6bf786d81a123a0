"""The four test sets built from the real files in shared/data match the data README and HELM's code.

Skipped when shared/data is absent.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helm.benchmark.scenarios import headqa_scenario, medcalc_bench_scenario
from helm.benchmark.scenarios.headqa_scenario import HeadQAScenario
from helm.benchmark.scenarios.medbullets_scenario import MedBulletsScenario
from helm.benchmark.scenarios.medcalc_bench_scenario import MedCalcBenchScenario
from helm.benchmark.scenarios.medec_scenario import MedecScenario

from helm_optimizer.scenarios.medical import (
    LocalHeadQAScenario,
    LocalMedBulletsScenario,
    LocalMedCalcBenchScenario,
    LocalMedecScenario,
    head_qa_rows,
)
from helm_optimizer.scenarios.medical._files import read_csv_records
from helm_optimizer.scenarios.medical.medbullets import answer_distribution

from .conftest import as_dicts


def test_medcalc_bench(real_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instances = LocalMedCalcBenchScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    assert len(instances) == 1047
    assert [i.id for i in instances] == [str(n) for n in range(1, 1048)]
    assert Counter(i.extra_data["category"] for i in instances) == {
        "lab": 327,
        "risk": 240,
        "physical": 240,
        "severity": 80,
        "diagnosis": 60,
        "date": 60,
        "dosage": 40,
    }
    # HELM's own loader, fed the HF-shaped rows of the same CSV.
    rows: list[dict[str, Any]] = [
        {**row, "Row Number": int(row["Row Number"]), "Calculator ID": int(row["Calculator ID"])}
        for row in read_csv_records(real_data_dir / "medcalc_bench" / "test_data.csv", ())
    ]
    monkeypatch.setattr(medcalc_bench_scenario, "load_dataset", lambda path: {"test": rows})
    helm = as_dicts(MedCalcBenchScenario().get_instances(str(tmp_path)))
    for h in helm:
        h["id"] = str(h["id"])
    assert as_dicts(instances) == helm


def test_medec(real_data_dir: Path, tmp_path: Path) -> None:
    instances = LocalMedecScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    assert len(instances) == 597
    golds = Counter("CORRECT" if i.references[0].output.text == "CORRECT" else "error" for i in instances)
    assert golds == {"error": 311, "CORRECT": 286}
    helm_dir = tmp_path / "helm"
    helm_dir.mkdir()
    shutil.copy(
        real_data_dir / "medec" / "MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",
        helm_dir / "medec_test.csv",
    )
    assert as_dicts(instances) == as_dicts(MedecScenario().get_instances(str(helm_dir)))


def test_head_qa(real_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instances = LocalHeadQAScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    assert len(instances) == 2675  # 2,742 questions less 67 with an image
    assert {len(i.references) for i in instances} == {4}
    assert all(sum(r.is_correct for r in i.references) == 1 for i in instances)
    assert {i.extra_data["category"] for i in instances} == {
        "biology",
        "chemistry",
        "medicine",
        "nursery",
        "pharmacology",
        "psychology",
    }
    rows = head_qa_rows(real_data_dir / "head_qa" / "HEAD_EN" / "test_HEAD_EN.json")
    assert len(rows) == 2742
    monkeypatch.setattr(headqa_scenario, "load_dataset", lambda path, language: {"test": rows})
    assert as_dicts(instances) == as_dicts(HeadQAScenario().get_instances(str(tmp_path)))


def test_medbullets(real_data_dir: Path, tmp_path: Path) -> None:
    instances = LocalMedBulletsScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    assert len(instances) == 308
    assert answer_distribution(instances) == {"A": 61, "B": 74, "C": 53, "D": 67, "E": 53}
    helm_dir = tmp_path / "helm"
    helm_dir.mkdir()
    shutil.copy(real_data_dir / "medbullets" / "medbullets_op5.csv", helm_dir / "medbullets_op5.csv")
    assert as_dicts(instances) == as_dicts(MedBulletsScenario().get_instances(str(helm_dir)))
