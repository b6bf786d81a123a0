"""Missing, empty, truncated and mis-encoded data files fail with one-line DataErrors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helm.benchmark.scenarios.scenario import Instance

from helm_optimizer.errors import DataError
from helm_optimizer.scenarios.medical import (
    LocalHeadQAScenario,
    LocalMedBulletsScenario,
    LocalMedCalcBenchScenario,
    LocalMedecScenario,
)

Build = Callable[[str], list[Instance]]

# benchmark -> (relative test file, loader given a data dir)
CASES: dict[str, tuple[str, Callable[[str], Build]]] = {
    "medcalc_bench": (
        "medcalc_bench/test_data.csv",
        lambda d: LocalMedCalcBenchScenario(data_dir=d).get_instances,
    ),
    "medec": (
        "medec/MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",
        lambda d: LocalMedecScenario(data_dir=d).get_instances,
    ),
    "head_qa": ("head_qa/HEAD_EN/test_HEAD_EN.json", lambda d: LocalHeadQAScenario(data_dir=d).get_instances),
    "medbullets": (
        "medbullets/medbullets_op5.csv",
        lambda d: LocalMedBulletsScenario(data_dir=d).get_instances,
    ),
}


def _copy_fixture(fixture_dir: Path, tmp_path: Path, benchmark: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(fixture_dir / benchmark, data / benchmark)
    return data / CASES[benchmark][0]


@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_missing_file_names_file_directories_and_fix(benchmark: str, tmp_path: Path) -> None:
    relative, loader = CASES[benchmark]
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as info:
        loader(str(tmp_path / "data"))(str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert Path(relative).name in message
    assert str(tmp_path / "data" / benchmark) in message  # <data_dir>/<benchmark>/...
    assert f"searched {tmp_path / 'data' / benchmark}" in message
    assert f", {tmp_path / 'data'}" in message  # ... and the data dir itself
    assert "--data-dir" in message
    assert "online" in message


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        LocalMedecScenario(data_dir=str(tmp_path / "nope")).get_instances(str(tmp_path))


@pytest.mark.parametrize("benchmark", sorted(CASES))
@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file(benchmark: str, content: bytes, fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, benchmark)
    path.write_bytes(content)
    with pytest.raises(DataError, match="is empty") as info:
        CASES[benchmark][1](str(tmp_path / "data"))(str(tmp_path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("benchmark", sorted(CASES))
def test_not_utf8(benchmark: str, fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, benchmark)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.replace("a", "é", 1).encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as info:
        CASES[benchmark][1](str(tmp_path / "data"))(str(tmp_path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("benchmark", "column"),
    [
        ("medcalc_bench", "Ground Truth Answer"),
        ("medcalc_bench", "Upper Limit"),
        ("medec", "Sentences"),
        ("medec", "Error Sentence ID"),
        ("medbullets", "answer_idx"),
        ("medbullets", "ope"),
    ],
)
def test_missing_column(benchmark: str, column: str, fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, benchmark)
    lines = path.read_text(encoding="utf-8").split("\n", 1)
    header = lines[0].replace(column, "renamed")
    path.write_text(header + "\n" + lines[1], encoding="utf-8")
    with pytest.raises(DataError) as info:
        CASES[benchmark][1](str(tmp_path / "data"))(str(tmp_path))
    message = str(info.value)
    assert str(path) in message and repr(column) in message and "\n" not in message


def test_header_only_csv(fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, "medec")
    path.write_text(path.read_text(encoding="utf-8").split("\n", 1)[0] + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        LocalMedecScenario(data_dir=str(tmp_path / "data")).get_instances(str(tmp_path))


def test_medcalc_row_number_not_an_integer(fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, "medcalc_bench")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n1,2,", "\nfirst,2,", 1), encoding="utf-8")
    with pytest.raises(DataError, match="Row Number"):
        LocalMedCalcBenchScenario(data_dir=str(tmp_path / "data")).get_instances(str(tmp_path))


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"version": "1.0"}), "no 'exams'"),
        (
            json.dumps({"exams": {"E": {"name": "E", "category": "biology", "year": "2016"}}}),
            "malformed exam 'E'",
        ),
    ],
)
def test_head_qa_malformed_json(payload: str, problem: str, fixture_dir: Path, tmp_path: Path) -> None:
    path = _copy_fixture(fixture_dir, tmp_path, "head_qa")
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(DataError, match=problem):
        LocalHeadQAScenario(data_dir=str(tmp_path / "data")).get_instances(str(tmp_path))
