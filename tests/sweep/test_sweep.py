"""The main job on the fake server: agents, HELM runs, table, plots; resumable; local vs Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.run import run_sweep
from tests.sweep.conftest import sweep_dict, write_config


def _rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = json.loads((output_dir / "report" / "report.json").read_text())["rows"]
    keep = ("scenario", "model", "method", "n", "mean", "ci_low", "ci_high", "delta", "p_value")
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["scenario"], r["model"], r["method"]))


@pytest.fixture(scope="module")
def clean_sweep(sweep_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("clean")
    before = sweep_server.stats().get("completions", 0)
    config = SweepConfig.model_validate(sweep_dict(sweep_server.api_base, out / "run", summarize=True))
    result = run_sweep(config)
    assert result.failed == []
    return out / "run", sweep_server.stats().get("completions", 0) - before


def test_sweep_produces_agents_runs_table_and_plots(clean_sweep: tuple[Path, int]) -> None:
    out, calls = clean_sweep
    agents = sorted(p.relative_to(out / "agents").as_posix() for p in (out / "agents").rglob("*.json")
                    if not p.name.endswith(".meta.json"))
    expected = []
    for model in ("fake-a", "fake-b"):
        for optimizer in ("BootstrapFewShotWithRandomSearch", "LabeledFewShot"):
            expected.append(f"head_qa/openai/{model}/{optimizer}.json")
            expected += [f"medbullets/openai/{model}/{optimizer}.fold{k}.json" for k in (0, 1)]
    assert agents == sorted(expected)
    runs = [p for p in (out / "helm" / "benchmark_output" / "runs" / "test-sweep").iterdir()
            if (p / "stats.json").is_file()]
    # per model: head_qa 4 methods; medbullets 2 unfolded + 2 optimizers x 2 folds
    assert len(runs) == 2 * (4 + 6)
    for name in ("report.md", "report.csv", "report.json", "report.html", "scores.png", "scores.svg"):
        assert (out / "report" / name).stat().st_size > 0
    assert (out / "helm" / "benchmark_output" / "runs" / "test-sweep" / "groups.json").is_file()
    assert calls > 0


def test_table_scores_equal_helm_stats(clean_sweep: tuple[Path, int]) -> None:
    out, _ = clean_sweep
    rows = json.loads((out / "report" / "report.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 4
    records = [json.loads(p.read_text()) for p in (out / "evaluations").rglob("*.json")]
    for record in records:
        stats = json.loads((out / record["run_dir"] / "stats.json").read_text())
        helm_mean = next(s["mean"] for s in stats if s["name"]["name"] == record["main_metric"]
                         and s["name"]["split"] == "test" and "perturbation" not in s["name"])
        assert record["mean"] == pytest.approx(helm_mean)
    for row in rows:
        assert row["mean_matches_helm"] is True, row


def test_rerun_is_idempotent_with_no_lm_calls(clean_sweep: tuple[Path, int], sweep_server: Any) -> None:
    out, _ = clean_sweep
    before_rows = _rows(out)
    before = sweep_server.stats().get("completions", 0)
    config = SweepConfig.model_validate(sweep_dict(sweep_server.api_base, out))
    result = run_sweep(config)
    assert sweep_server.stats().get("completions", 0) == before
    assert {c.get("status") for c in result.cells.values()} == {"skipped"}
    assert _rows(out) == before_rows


def test_interrupted_sweep_resumes_to_the_same_table(clean_sweep: tuple[Path, int], sweep_server: Any,
                                                     tmp_path: Path) -> None:
    clean_out, clean_calls = clean_sweep
    out = tmp_path / "run"
    config_path = write_config(tmp_path / "sweep.yaml", sweep_dict(sweep_server.api_base, out))
    env = {**os.environ, "PYTHONPATH": ""}
    before = sweep_server.stats().get("completions", 0)
    process = subprocess.Popen([sys.executable, "-m", "helm_optimizer.cli.main", "sweep", str(config_path)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((out / "agents").rglob("*.meta.json"))) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done_before_kill = len(list((out / "agents").rglob("*.meta.json")))
    assert 2 <= done_before_kill < 12
    config = SweepConfig.model_validate(sweep_dict(sweep_server.api_base, out))
    result = run_sweep(config)
    assert result.failed == []
    skipped = [label for label, cell in result.cells.items() if cell.get("status") == "skipped"]
    assert skipped, "finished cells must be skipped on resume"
    assert _rows(out) == _rows(clean_out)
    spent = sweep_server.stats().get("completions", 0) - before
    # Finished work is not paid for twice; calls in flight at the kill (at most 2 x num_threads: the
    # optimizer's and the evaluation's pools) may be, and concurrent identical requests vary a little.
    assert spent <= clean_calls + 2 * 4, (spent, clean_calls)


@pytest.mark.slow
def test_ray_executor_gives_the_same_table(clean_sweep: tuple[Path, int], sweep_server: Any, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    clean_out, _ = clean_sweep
    config = SweepConfig.model_validate(sweep_dict(sweep_server.api_base, tmp_path / "ray"))
    try:
        result = run_sweep(config, executor="ray", num_workers=2)
    finally:
        ray.shutdown()
    assert result.failed == []
    assert _rows(tmp_path / "ray") == _rows(clean_out)
