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
from tests.sweep.conftest import CAP, sweep_dict, write_config


def _rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = json.loads((output_dir / "report" / "report.json").read_text())["rows"]
    keep = ("scenario", "model", "method", "n", "mean", "ci_low", "ci_high", "delta", "p_value")
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["scenario"], r["model"], r["method"]))


def _agents(output_dir: Path) -> dict[str, bytes]:
    root = output_dir / "agents"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))
            if not p.name.endswith(".meta.json")}


@pytest.fixture(scope="module")
def clean_sweep(sweep_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The sweep with the default executor (the scheduler) against the capped provider."""
    out = tmp_path_factory.mktemp("clean")
    before = sweep_server.stats()
    config = SweepConfig.model_validate(sweep_dict(sweep_server.api_base, out / "run", summarize=True))
    result = run_sweep(config)
    assert result.failed == []
    after = sweep_server.stats()
    # The limits held: no request arrived above the provider's cap (each model got its declared share).
    assert after.get("over_cap", 0) == before.get("over_cap", 0), after
    assert after["max_in_flight"] <= CAP
    return out / "run", after.get("completions", 0) - before.get("completions", 0)


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
    # Cells run side by side: wait until one whole cell is done (head_qa has one agent per cell; a
    # medbullets cell has one per fold) and another agent is written.
    while time.monotonic() < deadline and process.poll() is None:
        metas = list((out / "agents").rglob("*.meta.json"))
        if len(metas) >= 2 and any(m.relative_to(out / "agents").parts[0] == "head_qa" for m in metas):
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
    over_cap = sweep_server.stats().get("over_cap", 0)
    try:
        result = run_sweep(config, executor="ray", num_workers=2)
    finally:
        ray.shutdown()
    assert result.failed == []
    assert _rows(tmp_path / "ray") == _rows(clean_out)
    assert _agents(tmp_path / "ray") == _agents(clean_out)
    # Two workers, one limiter (a Ray actor): still nothing above the provider's cap.
    assert sweep_server.stats().get("over_cap", 0) == over_cap
    assert result.limits is not None and set(result.limits["endpoints"]) == {"openai/fake-a", "openai/fake-b"}


def test_the_serial_executor_computes_the_same_agents_and_table(clean_sweep: tuple[Path, int], sweep_server: Any,
                                                                tmp_path: Path) -> None:
    """The scheduler changes when work runs, never what it computes."""
    clean_out, _ = clean_sweep
    out = tmp_path / "serial"
    result = run_sweep(SweepConfig.model_validate(sweep_dict(sweep_server.api_base, out)), executor="serial")
    assert result.failed == []
    assert _agents(out) == _agents(clean_out) and len(_agents(out)) == 12
    assert _rows(out) == _rows(clean_out)


def test_estimate_beside_the_actual_calls(clean_sweep: tuple[Path, int], sweep_server: Any, tmp_path: Path) -> None:
    """--dry-run --json before any call (writing nothing), validate --estimate, and the estimate vs actual file."""
    clean_out, clean_calls = clean_sweep
    out = tmp_path / "fresh"
    config_path = write_config(tmp_path / "sweep.yaml", sweep_dict(sweep_server.api_base, out))
    env = {**os.environ, "PYTHONPATH": "", "COLUMNS": "200"}
    before = sweep_server.stats().get("completions", 0)
    command = [sys.executable, "-m", "helm_optimizer.cli.main"]
    dry = subprocess.run([*command, "sweep", str(config_path), "--dry-run", "--json"], capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    assert dry.returncode == 0, dry.stderr[-3000:]
    estimate = json.loads(dry.stdout)
    assert sweep_server.stats().get("completions", 0) == before and not out.exists()
    assert isinstance(estimate["estimated_lm_calls"], int) and estimate["estimated_wall_s"] > 0
    assert estimate["estimated_cost"] == 0.0  # a server on this machine costs nothing
    assert len(estimate["cells"]) == 2 * 2 * 2 + 2 * 2 and set(estimate["endpoints"]) == {"openai/fake-a",
                                                                                           "openai/fake-b"}
    # The estimate against what the clean sweep really called (its cache started empty).
    assert abs(estimate["estimated_lm_calls"] - clean_calls) / clean_calls <= 0.15, (estimate["estimated_lm_calls"],
                                                                                     clean_calls)
    checked = subprocess.run([*command, "validate", str(config_path), "--estimate"], capture_output=True, text=True,
                             env=env, timeout=300, check=False)
    assert checked.returncode == 0 and "LM calls" in checked.stdout and "Total:" in checked.stdout, checked.stdout
    compared = json.loads((clean_out / "report" / "estimate.json").read_text(encoding="utf-8"))
    assert compared["actual_lm_calls"] > 0 and compared["estimate_error"] is not None
    assert {r["cell"] for r in compared["rows"]} == {c["cell"] for c in estimate["cells"]}
    assert all(r["actual_lm_calls"] is not None for r in compared["rows"]), compared["rows"]
    assert "| estimated calls | actual calls |" in (clean_out / "report" / "estimate.md").read_text(encoding="utf-8")
    # ... and the report shows it, with each endpoint's limiter counts
    report_md = (clean_out / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Estimate vs actual" in report_md and "| openai/fake-a |" in report_md, report_md[-2000:]
    assert 'id="estimate"' in (clean_out / "report" / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("executor", ["local", "serial"])
def test_the_sweeps_max_cost_stops_it_cleanly_before_it_is_exceeded(executor: str, sweep_server: Any,
                                                                    tmp_path: Path) -> None:
    # ~$0.01 a call (a call reserves its prompt and 1024 completion tokens against the cap until it is answered)
    priced = {"cost_per_million_input_tokens": 20.0, "cost_per_million_output_tokens": 20.0}
    data = sweep_dict(sweep_server.api_base, tmp_path / "run", max_cost=0.5, report=False)
    data["models"] = [{**m, **priced} for m in data["models"]]
    result = run_sweep(SweepConfig.model_validate(data), executor=executor)
    assert result.limits is not None
    assert 0 < result.limits["spent"] <= 0.5, result.limits
    stopped = [c for c in result.cells.values() if c.get("status") == "failed"]
    assert stopped and any("max_cost" in str(c.get("error")) for c in stopped), stopped
    assert all("max_cost" in str(c.get("error")) or "not evaluated" in str(c.get("error")) for c in stopped), stopped
    for meta in (tmp_path / "run" / "agents").rglob("*.meta.json"):  # what finished is whole
        json.loads(meta.read_text(encoding="utf-8"))
