"""The typed on-disk records: one definition for writer and reader, versioned, migrated, strict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_optimizer.errors import DataError
from helm_optimizer.records import (
    SCHEMA_VERSION,
    AgentData,
    AgentMeta,
    AgentScores,
    EvaluationRecord,
    ReportFile,
    SweepState,
    Usage,
    read_record,
    write_record,
)


def _meta() -> AgentMeta:
    return AgentMeta(
        scenario="head_qa", run_entry="head_qa", model="openai/m", optimizer="MIPROv2", program="cot", seed=0,
        config={"scenario": "head_qa"}, config_fingerprint="c", created_at="2026-12-01T00:00:00+00:00",
        data=AgentData(fingerprint="d", train_size=2, val_size=2, strategy="s", main_metric="exact_match",
                       eval_size=3, eval_ids_fingerprint="e", test_size=3),
        scores=AgentScores(metric="exact_match", val_before=0.0, val_after=0.5),
    )


def _record(**changes: object) -> EvaluationRecord:
    fields: dict[str, object] = dict(scenario="head_qa", run_entry="head_qa", model="openai/m", method="baseline",
                                     suite="s", run_dir="helm/x", main_metric="exact_match", split="test",
                                     mean=0.5, count=4)
    fields.update(changes)
    return EvaluationRecord.model_validate(fields)


@pytest.mark.parametrize("record", [
    _meta(), _record(), _record(fold=1, num_folds=2, optimization=Usage(lm_calls=3, cost=None)),
    SweepState(config={"suite": "x"}),
    ReportFile(seed=0, resamples=10, columns=["a", "b"], rows=[{"a": 1, "b": None}]),
])
def test_round_trip(record: object, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_record(path, record)  # type: ignore[arg-type]
    again = read_record(type(record), path)  # type: ignore[type-var]
    assert again == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_previous_layouts_are_migrated(tmp_path: Path) -> None:
    meta = _meta().model_dump(mode="json")
    del meta["schema_version"]
    meta["format"] = 1
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert read_record(AgentMeta, tmp_path / "m.json") == _meta()
    rec = _record().model_dump(mode="json")
    del rec["schema_version"]
    (tmp_path / "e.json").write_text(json.dumps(rec))
    assert read_record(EvaluationRecord, tmp_path / "e.json") == _record()
    (tmp_path / "s.json").write_text(json.dumps({"suite": "x"}))
    assert read_record(SweepState, tmp_path / "s.json").config == {"suite": "x"}


@pytest.mark.parametrize("version, hint", [(3, "upgrade helm-optimizer"), (1, "delete it")])
def test_another_version_is_a_one_line_error_naming_the_fix(tmp_path: Path, version: int, hint: str) -> None:
    data = _record().model_dump(mode="json") | {"schema_version": version}
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        read_record(EvaluationRecord, path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and f"schema version {version}" in message and hint in message


@pytest.mark.parametrize("key, value", [("count", "4"), ("count", True), ("mean", "0.5"), ("fold", 1),
                                        ("mean", float("nan")), ("unknown_key", 1)])
def test_wrong_types_and_unknown_keys_are_refused(tmp_path: Path, key: str, value: object) -> None:
    data = _record().model_dump(mode="json") | {key: value}
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        read_record(EvaluationRecord, path)
    assert key in str(info.value) or "fold" in str(info.value)


def test_garbage_and_missing_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"scenario": ')
    with pytest.raises(DataError, match="Cannot read evaluation record"):
        read_record(EvaluationRecord, path)
    with pytest.raises(DataError, match="Missing agent metadata"):
        read_record(AgentMeta, tmp_path / "absent.json")
