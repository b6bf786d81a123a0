"""HTTP 200 without a usable answer (an HTML page, ``choices: []``, a message without content).

Such a reply is a failed call: retried, never cached, counted. When the retry gets a real answer
the run ends with exactly the result of a clean run; when no reply is ever usable the run stops
with one line and exit 2 and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS
from tests.faults.procs import (
    DEMO_DATA,
    KEY_ENV,
    MODEL,
    child_env,
    error_lines,
    records,
    run_cli,
)

KINDS = ("html", "no_choices", "no_content")


def _optimize(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["optimize", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--optimizer", "BootstrapFewShot", "--max-bootstrapped-demos", "1", "--max-labeled-demos", "1",
            "--data-dir", str(DEMO_DATA), "--limit", "8", "--num-threads", "4", "--output-dir", str(out),
            "--timeout", "5", *extra]


def _evaluate(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--methods", "baseline,ZeroShotCoT", "--data-dir", str(DEMO_DATA), "--max-eval-instances", "8",
            "--output-dir", str(out), "--timeout", "5", *extra]


def _agent(out: Path) -> Path:
    (path,) = [p for p in (out / "agents").rglob("*.json") if not p.name.endswith(".meta.json")]
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The agent and evaluation means of a run against a server that always answers properly."""
    base = tmp_path_factory.mktemp("clean")
    env = child_env(base / "cache")
    with FakeOpenAIServer(**SERVER_SETTINGS) as server:  # type: ignore[arg-type]
        code, output = run_cli(_optimize(server.api_base, base / "opt"), base / "opt.log", env)
        assert code == 0, output[-3000:]
        code, output = run_cli(_evaluate(server.api_base, base / "eval"), base / "eval.log", env)
        assert code == 0, output[-3000:]
    return {"agent": _agent(base / "opt").read_bytes(),
            "means": {r["method"]: r["mean"] for r in records(base / "eval")}}


@pytest.mark.parametrize("kind", KINDS)
def test_optimize_retries_a_reply_without_content_and_writes_the_clean_agent(kind: str, clean: dict[str, object],
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = child_env(tmp_path / "cache")
    # Every request's first attempt gets the hostile reply; the retry gets the real answer.
    with FakeOpenAIServer(**SERVER_SETTINGS, failure_rate=1.0, failure_kinds=(kind,),  # type: ignore[arg-type]
                          max_failures_per_request=1) as server:
        code, output = run_cli(_optimize(server.api_base, out), tmp_path / "run.log", env)
        injected = server.stats().get(f"injected_{kind}", 0)
        assert code == 0, output[-3000:]
        agent = _agent(out).read_bytes()
        usage = json.loads(_agent(out).with_name("BootstrapFewShot.meta.json").read_text(encoding="utf-8"))["usage"]
        completions = server.completions
        # Nothing hostile was cached: a forced rerun is answered from the cache alone.
        code, output = run_cli(_optimize(server.api_base, out, "--force"), tmp_path / "rerun.log", env)
        assert code == 0, output[-3000:]
        assert server.completions == completions and server.stats().get(f"injected_{kind}", 0) == injected
    assert injected > 0
    assert agent == clean["agent"] == _agent(out).read_bytes()
    assert usage["failed_calls"] == 0 and usage["retries"] == injected, usage


@pytest.mark.parametrize("kind", KINDS)
def test_optimize_against_a_server_that_never_answers_usably_stops_in_one_line(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, failure_rate=1.0, failure_kinds=(kind,),  # type: ignore[arg-type]
                          max_failures_per_request=10**6) as server:
        code, output = run_cli(_optimize(server.api_base, out, "--num-retries", "1"), tmp_path / "run.log",
                               child_env(tmp_path / "cache"))
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert "without a usable completion" in line and server.api_base in line and "--api-base" in line, line
    assert not list((out / "agents").rglob("*.json")) if (out / "agents").is_dir() else True


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_retries_a_reply_without_content_and_scores_as_a_clean_run(kind: str, clean: dict[str, object],
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, failure_rate=1.0, failure_kinds=(kind,),  # type: ignore[arg-type]
                          max_failures_per_request=1) as server:
        code, output = run_cli(_evaluate(server.api_base, out), tmp_path / "run.log", child_env(tmp_path / "cache"))
        injected = server.stats().get(f"injected_{kind}", 0)
    assert code == 0, output[-3000:]
    assert injected > 0
    by_method = {r["method"]: r for r in records(out)}
    assert {m: r["mean"] for m, r in by_method.items()} == clean["means"]
    for record in by_method.values():  # both paths: HELM's client (baseline) and the agent client
        assert record["failed_requests"] == 0 and record["retries"] > 0, record


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_against_a_server_that_never_answers_usably_stops_in_one_line(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, failure_rate=1.0, failure_kinds=(kind,),  # type: ignore[arg-type]
                          max_failures_per_request=10**6) as server:
        code, output = run_cli(_evaluate(server.api_base, out, "--num-retries", "1"), tmp_path / "run.log",
                               child_env(tmp_path / "cache"))
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert "without a usable completion" in line and server.api_base in line, line
    assert records(out) == [] if (out / "evaluations").is_dir() else True
