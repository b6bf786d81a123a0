"""A sweep's HELM output is readable by every later process, not only by the one that wrote it.

The sweep has a ``data_dir`` (deep below the temporary directory, as a user's home can be), an
``eval_limit`` and a cross-fitted scenario (medbullets: two folds), with ``summarize`` on. It runs
once here and once more as ``helm-optimizer sweep`` in a fresh process (every cell skipped, no LM
call, ``helm-summarize`` again); then ``helm-summarize`` and ``helm-server`` run in fresh processes
with no ``HELM_OPTIMIZER_*`` variable, as a user would run them later. Every one of them rebuilds
the run specs' scenarios from the arguments alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_optimizer.serving.fake import FakeOpenAIServer
from helm_optimizer.sweep.config import load_sweep_config
from helm_optimizer.sweep.run import run_sweep
from tests._fresh import fresh_env, run_script, serve_and_fetch
from tests.conftest import FIXTURE_DATA, SHARED_DATA
from tests.sweep.conftest import DEMO_DATA

pytestmark = pytest.mark.slow

SUITE = "fresh-processes"


def _deep_data_dir(root: Path, levels: int = 1) -> Path:
    """The benchmark files in nested folders with spaces (the real files when ../shared/data has them)."""
    deep = root.joinpath(*["benchmark files"] * levels)
    shared = (SHARED_DATA / "head_qa").is_dir() and (SHARED_DATA / "medbullets").is_dir()
    shutil.copytree((SHARED_DATA if shared else DEMO_DATA) / "head_qa", deep / "head_qa")
    shutil.copytree((SHARED_DATA if shared else FIXTURE_DATA) / "medbullets", deep / "medbullets")
    return deep


def _write_config(tmp_path: Path, api_base: str, *, levels: int = 1) -> Path:
    config = {
        "output_dir": "run", "suite": SUITE, "seed": 0,
        "data_dir": str(_deep_data_dir(tmp_path / "data", levels)),
        "scenarios": ["head_qa", "medbullets"],
        "optimizers": ["LabeledFewShot"],
        "models": [{"model": "openai/fresh-fake", "api_base": api_base}],
        "methods": ["baseline"],
        "max_bootstrapped_demos": 1, "max_labeled_demos": 2, "num_threads": 4,
        "limit": 6, "eval_limit": 6, "summarize": True,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_sweep_reruns_and_helm_tools_read_it_in_fresh_processes(tmp_path: Path) -> None:
    with FakeOpenAIServer(accuracy=0.5, demo_accuracy=0.8, seed=3) as server:
        config_path = _write_config(tmp_path, server.api_base)
        config = load_sweep_config(config_path)
        first = run_sweep(config)
        assert first.failed == [], first.cells
        assert first.summarize_path is not None and (first.summarize_path / "groups").is_dir()
        calls = server.completions
        assert calls > 0

        env = fresh_env(tmp_path / "home")
        run_script("helm-optimizer", ["sweep", str(config_path)], env=env, cwd=tmp_path, timeout=400)
        assert server.completions == calls, "the second run made LM calls"

    out = tmp_path / "run"
    agents = sorted(p.name for p in (out / "agents").rglob("*.json") if not p.name.endswith(".meta.json"))
    assert agents == ["LabeledFewShot.fold0.json", "LabeledFewShot.fold1.json", "LabeledFewShot.json"]
    records = [json.loads(p.read_text()) for p in (out / "evaluations").rglob("*.json")]
    assert sorted((r["scenario"], r["method"], r["fold"]) for r in records) == [
        ("head_qa", "LabeledFewShot", None), ("head_qa", "baseline", None),
        ("medbullets", "LabeledFewShot", 0), ("medbullets", "LabeledFewShot", 1), ("medbullets", "baseline", None)]
    assert all(r["count"] == (3 if r["fold"] is not None else 6) for r in records), records

    benchmark_output, prod_env = out / "helm" / "benchmark_output", out / "helm" / "prod_env"
    suite_dir = benchmark_output / "runs" / SUITE
    shutil.rmtree(suite_dir / "groups")  # what helm-summarize writes: written again below
    run_script("helm-summarize", ["--suite", SUITE, "-o", str(benchmark_output), "--local-path", str(prod_env),
                                  "--auto-generate-schema", "--schema-validation", "warn"],
               env=fresh_env(tmp_path / "home"), cwd=tmp_path)
    groups = sorted(p.name for p in (suite_dir / "groups").glob("*.json"))
    assert groups, "helm-summarize wrote no leaderboard group"

    fetched: dict[str, Any] = serve_and_fetch(benchmark_output, SUITE, ["runs.json", "summary.json"],
                                              env=fresh_env(tmp_path / "home"), cwd=tmp_path)
    run_names = {run["run_spec"]["name"] for run in fetched["runs.json"]}
    assert len(run_names) == len(records) == 5
    assert {r["run_dir"].rsplit("/", 1)[-1] for r in records} == run_names
    assert fetched["summary.json"]["suite"] == SUITE


def test_a_data_dir_too_long_for_helms_leaderboard_is_refused_before_any_lm_call(tmp_path: Path) -> None:
    """helm-summarize names files after every scenario argument; a path it cannot fit fails up front."""
    from helm_optimizer.errors import ConfigError

    with FakeOpenAIServer() as server:
        config_path = _write_config(tmp_path, server.api_base, levels=10)
        with pytest.raises(ConfigError) as info:
            run_sweep(load_sweep_config(config_path))
        assert server.requests == 0
    message = str(info.value)
    assert "\n" not in message and "data_dir=" in message and "move or symlink the benchmark files" in message
    assert "File name too long" in message and "summarize off" in message
    assert not (tmp_path / "run" / "agents").exists()
    # the same sweep without the leaderboard is accepted
    from helm_optimizer.sweep.config import validate_sweep

    validate_sweep(load_sweep_config(config_path).model_copy(update={"summarize": False}))
