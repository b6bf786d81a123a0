"""A server failing ~30% of attempts (429, 500, hang) changes nothing but the retry counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.optimize import optimize
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS, Reference
from tests.faults.procs import (
    MODEL,
    agent_bytes,
    child_env,
    metas,
    records,
    run_cli,
    table_rows,
    tiny_sweep,
    write_yaml,
)

# Every attempt fails with probability 0.3, at most twice per request, so 4 retries always get through.
# The client gives up on a hang after 2 s; the server hangs a little longer.
FLAKY = {"failure_rate": 0.3, "failure_kinds": ("429", "500", "timeout"), "max_failures_per_request": 2,
         "hang_seconds": 2.5}


def _optimize(server: FakeOpenAIServer, out: Path, plugin: str) -> tuple[bytes, dict[str, int]]:
    config = OptimizeConfig(
        scenario="times_tables", optimizer="BootstrapFewShotWithRandomSearch", output_dir=out,
        lm=LMConfig(model=MODEL, api_base=server.api_base, timeout=2, num_retries=4), num_threads=4,
        max_bootstrapped_demos=2, max_labeled_demos=2, optimizer_options={"num_candidate_programs": 2},
    )
    (agent,) = optimize(config, plugins=(plugin,)).agents
    return agent.path.read_bytes(), agent.usage


@pytest.mark.slow
def test_optimize_through_faults_writes_the_same_agent(tmp_path: Path, example_plugin: str) -> None:
    with FakeOpenAIServer(**SERVER_SETTINGS) as clean:  # type: ignore[arg-type]
        clean_bytes, clean_usage = _optimize(clean, tmp_path / "clean", example_plugin)
    with FakeOpenAIServer(**SERVER_SETTINGS, **FLAKY) as flaky:  # type: ignore[arg-type]
        flaky_bytes, flaky_usage = _optimize(flaky, tmp_path / "flaky", example_plugin)
        stats = flaky.stats()
    assert flaky_bytes == clean_bytes
    assert stats["injected_failures"] >= 3, stats  # the faults really happened ...
    assert {k for k in stats if k.startswith("injected_") and k != "injected_failures"} >= {
        "injected_429", "injected_500"}, stats
    # ... and every one of them is reported as a retried attempt; none surfaced as a failed call
    assert flaky_usage["retries"] == stats["injected_failures"]
    assert flaky_usage["failed_calls"] == clean_usage["failed_calls"] == 0
    assert flaky_usage["lm_calls"] == stats["completions"]  # (the count varies with thread timing: cache hits)
    assert clean_usage["retries"] == 0


@pytest.mark.slow
def test_sweep_through_faults_gives_the_same_agents_and_table(reference: Reference, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, **FLAKY) as flaky:  # type: ignore[arg-type]
        config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(flaky.api_base, out))
        code, output = run_cli(["sweep", str(config)], tmp_path / "child.log", child_env(tmp_path / "cache"))
        stats = flaky.stats()
    assert code == 0, output[-3000:]
    assert agent_bytes(out) == agent_bytes(reference.output_dir)
    assert table_rows(out) == table_rows(reference.output_dir)
    injected = stats.get("injected_failures", 0)
    assert injected >= 5 and stats.get("injected_timeout", 0) >= 1, stats
    # Retries are reported where the work is recorded: agent metadata (optimization) and evaluation
    # records (HELM runs: the OpenAI SDK's retries for the baseline, ours for DSPy methods).
    optimization_retries = sum(m["usage"]["retries"] for m in metas(out))
    evaluation_retries = sum(r["retries"] for r in records(out))
    assert optimization_retries + evaluation_retries == injected
    assert evaluation_retries > 0 and optimization_retries > 0
    assert all(r["failed_requests"] == 0 for r in records(out))
    assert f"{injected} retried attempts, 0 failed." in output
    # ... and in the run log, one line per retried attempt (ours for DSPy calls, the OpenAI SDK's for HELM's).
    log = (out / "logs" / "helm-optimizer.log").read_text(encoding="utf-8")
    ours = [line for line in log.splitlines() if " helm_optimizer.lm: LM call to " in line and "; retry " in line]
    sdk = [line for line in log.splitlines() if " openai._base_client: Retrying request" in line]
    assert len(ours) == optimization_retries + evaluation_retries - len(sdk) and sdk
    assert sum(r["retries"] for r in records(reference.output_dir)) == 0
