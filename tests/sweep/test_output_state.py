"""Output state that cannot lie: after an edit between runs, a sweep recomputes what changed and the
report shows exactly the current configuration's results — never a stale number, never a dead end.

One small sweep is run once; each case copies its output directory, makes one change a user makes
(config edits, deleted or truncated files of every kind, data edits), runs the sweep again and
checks the outcome.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.run import SweepResult, run_sweep
from tests.sweep.conftest import DEMO_DATA

pytestmark = pytest.mark.slow

MODEL = "openai/state-a"


@dataclass
class Base:
    root: Path
    config: dict[str, Any]
    api_base: str


def _config(api_base: str, out: Path, data: Path) -> dict[str, Any]:
    return {
        "output_dir": str(out), "suite": "state", "seed": 0,
        "scenarios": [{"entry": "head_qa", "data_dir": str(data)}],
        "optimizers": ["LabeledFewShot"],
        "models": [{"model": MODEL, "api_base": api_base}],
        "methods": ["baseline", "ZeroShotCoT"],
        "max_labeled_demos": 2, "num_threads": 2, "limit": 6, "eval_limit": 6, "summarize": False,
    }


@pytest.fixture(scope="module")
def base(sweep_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("state")
    shutil.copytree(DEMO_DATA, root / "data")
    config = _config(sweep_server.api_base, root / "out", root / "data")
    result = run_sweep(SweepConfig.model_validate(config))
    assert result.failed == [] and result.report_html is not None
    return Base(root=root, config=config, api_base=sweep_server.api_base)


def _copy(base: Base, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    shutil.copytree(base.root / "out", tmp_path / "out")
    shutil.copytree(base.root / "data", tmp_path / "data")
    config = json.loads(json.dumps(base.config))
    config["output_dir"] = str(tmp_path / "out")
    config["scenarios"][0]["data_dir"] = str(tmp_path / "data")
    return tmp_path / "out", config


def _rows(out: Path) -> list[dict[str, Any]]:
    return list(json.loads((out / "report" / "report.json").read_text())["rows"])


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (out / "evaluations").rglob("*.json")}


def _agent(out: Path) -> Path:
    return out / "agents" / "head_qa" / "openai" / "state-a" / "LabeledFewShot.json"


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "helm" / "benchmark_output" / "runs" / "state").iterdir()
                  if (p / "scenario_state.json").is_file())


def _change_answers(out: Path, config: dict[str, Any]) -> None:
    path = Path(config["scenarios"][0]["data_dir"]) / "head_qa" / "HEAD_EN" / "test_HEAD_EN.json"
    data = json.loads(path.read_text())
    for exam in data["exams"].values():
        for question in exam["data"]:
            question["ra"] = str(int(question["ra"]) % len(question["answers"]) + 1)
    path.write_text(json.dumps(data))


Edit = Callable[[Path, dict[str, Any]], None]


def _set(key: str, value: Any) -> Edit:
    def edit(out: Path, config: dict[str, Any]) -> None:
        config[key] = value
    return edit


def _truncate(pick: Callable[[Path], Path]) -> Edit:
    def edit(out: Path, config: dict[str, Any]) -> None:
        target = pick(out)
        target.write_text(target.read_text()[:20])
    return edit


def _delete(pick: Callable[[Path], Path]) -> Edit:
    def edit(out: Path, config: dict[str, Any]) -> None:
        target = pick(out)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return edit


def _meta(out: Path) -> Path:
    return _agent(out).with_name("LabeledFewShot.meta.json")


def _baseline_run(out: Path) -> Path:
    return next(p for p in _run_dirs(out) if "dspy" not in p.name)


CASES: dict[str, Edit] = {
    "every test answer changed": _change_answers,
    "suite renamed": _set("suite", "state-renamed"),
    "method removed": _set("methods", ["baseline"]),
    "eval_limit changed": _set("eval_limit", 4),
    "seed changed": _set("seed", 3),
    "agent deleted": _delete(_agent),
    "agent truncated": _truncate(_agent),
    "agent metadata truncated": _truncate(_meta),
    "HELM run directory deleted": _delete(_baseline_run),
    "stats.json truncated": _truncate(lambda out: _baseline_run(out) / "stats.json"),
    "per_instance_stats.json truncated": _truncate(lambda out: _baseline_run(out) / "per_instance_stats.json"),
    "evaluation record deleted": _delete(lambda out: next((out / "evaluations").rglob("baseline.json"))),
    "evaluation record truncated": _truncate(lambda out: next((out / "evaluations").rglob("ZeroShotCoT.json"))),
}


def _check_report_matches_records(out: Path, config: dict[str, Any]) -> None:
    """Every row is of the current config, and its mean is the current record's (itself HELM's stats)."""
    rows = _rows(out)
    methods = set(config["methods"]) | set(config["optimizers"])
    assert {r["method"] for r in rows} == methods
    records = {(r["method"], r.get("fold")): r for r in _records(out).values()
               if r["suite"] == config["suite"]}
    for row in rows:
        record = records[(row["method"], None)]
        assert row["mean"] == pytest.approx(record["mean"]), row["method"]
        assert record["inputs"]["seed"] == config["seed"] and record["inputs"]["eval_limit"] == config["eval_limit"]
        assert row["n"] == record["count"] == (config["eval_limit"] or row["n"])
        stats = json.loads((out / record["run_dir"] / "stats.json").read_text())
        assert stats, record["run_dir"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_edit_between_runs_recomputes_what_changed(case: str, base: Base, tmp_path: Path) -> None:
    out, config = _copy(base, tmp_path)
    before = _records(out)
    CASES[case](out, config)
    result: SweepResult = run_sweep(SweepConfig.model_validate(config))
    assert result.failed == [], result.cells
    _check_report_matches_records(out, config)
    after = _records(out)
    if case == "every test answer changed":
        # the data fingerprint changed, so every evaluation ran again (not "up to date" with old scores)
        assert all(after[name]["inputs"]["data"] != before[name]["inputs"]["data"] for name in before)
    if case == "method removed":
        stale = json.loads((out / "report" / "report.json").read_text())["stale_records"]
        assert stale, "the records of the old configuration must be named as stale"
    if case in ("seed changed", "agent truncated", "agent metadata truncated", "agent deleted"):
        meta = json.loads(_meta(out).read_text())
        assert meta["seed"] == config["seed"] and _agent(out).is_file()


def test_rerun_from_helms_cache_counts_no_calls(base: Base, sweep_server: Any, tmp_path: Path) -> None:
    """A deleted record is recomputed from HELM's request cache: the server sees nothing, the totals say 0."""
    out, config = _copy(base, tmp_path)
    for record in (out / "evaluations").rglob("*.json"):
        record.unlink()
    before = sweep_server.stats().get("completions", 0)
    result = run_sweep(SweepConfig.model_validate(config))
    assert sweep_server.stats().get("completions", 0) == before
    evaluated = [c for c in result.cells.values() if "records" in c]
    assert evaluated and all(c["lm_calls"] == 0 for c in evaluated), evaluated
    assert all(r["lm_calls"] == 0 for r in _records(out).values())


def test_report_alone_leaves_out_a_deleted_agent(base: Base, tmp_path: Path) -> None:
    from helm_optimizer.report import build_report

    out, _config_unused = _copy(base, tmp_path)
    _agent(out).unlink()
    paths = build_report(out)
    assert "LabeledFewShot" not in {r.method for r in paths.rows}
    assert any("no longer exists" in s.reason for s in paths.stale)
    assert "Stale records left out" in (out / "report" / "report.md").read_text()
