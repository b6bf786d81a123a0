"""Budgets and servers that stop answering: never more calls than --max-calls, never minutes of silence.

* ``--max-calls N`` reserves each call before it is sent: with 8 threads the server sees exactly N
  calls, then the run stops (exit 3) and writes nothing.
* A server that never answers: each command (``--timeout`` / ``--num-retries``, or ``timeout`` in
  a sweep config) stops with one line naming the server and the option to raise, after one call's
  worth of attempts, not one per call.
* While calls wait, the progress display says how many and for how long.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from helm_optimizer.cli.interrupt import INTERRUPTED
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
    start_cli,
    tiny_sweep,
    wait_for,
    write_yaml,
)

# Every attempt hangs far longer than any test: the server takes requests and never answers.
SILENT = {"failure_rate": 1.0, "failure_kinds": ("timeout",), "max_failures_per_request": 10**6,
          "hang_seconds": 3600.0}


def _optimize(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["optimize", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--optimizer", "BootstrapFewShot", "--max-bootstrapped-demos", "1", "--max-labeled-demos", "1",
            "--data-dir", str(DEMO_DATA), "--limit", "8", "--output-dir", str(out), *extra]


def _evaluate(api_base: str, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--methods", "baseline,ZeroShotCoT", "--data-dir", str(DEMO_DATA), "--max-eval-instances", "8",
            "--output-dir", str(out), *extra]


def _nothing_written(out: Path) -> None:
    for kind in ("agents", "evaluations"):
        assert not list((out / kind).rglob("*.json")) if (out / kind).is_dir() else True, kind


@pytest.mark.parametrize("limit", [1, 5])
def test_max_calls_is_never_exceeded_even_with_eight_threads(limit: int, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=0.2) as server:  # type: ignore[arg-type]
        code, output = run_cli(_optimize(server.api_base, out, "--max-calls", str(limit), "--num-threads", "8",
                                         "--no-cache"), tmp_path / "run.log", child_env(tmp_path / "cache"))
        sent = server.requests
    assert code == 3, output[-3000:]
    (line,) = error_lines(output)
    assert f"--max-calls {limit}" in line and "Stopped before writing the agent" in line, line
    assert sent == limit  # every call the budget allows, and not one more
    _nothing_written(out)


# Attempts the server may see before the command stops: the calls in flight (4 threads) times their
# attempts (1 retry), once per process that discovers the silence. A serial sweep runs its cells in one
# process and keeps the verdict across them; the local executor runs each unit (2 optimizations and the
# 2 evaluations that need no agent) in a worker process of its own, and each finds out by itself.
SILENCE_CASES = {"optimize": 4 * 2, "evaluate": 4 * 2, "sweep --executor serial": 4 * 2,
                 "sweep --executor local": 4 * 4 * 2}


@pytest.mark.parametrize("case", list(SILENCE_CASES))
def test_a_server_that_never_answers_stops_the_command_in_one_line(case: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = case.split()[0]
    with FakeOpenAIServer(**SERVER_SETTINGS, **SILENT) as server:  # type: ignore[arg-type]
        if command == "sweep":  # the per-model timeout of a sweep config
            model = {"model": MODEL, "api_base": server.api_base, "api_key_env": KEY_ENV, "timeout": 1,
                     "num_retries": 1}
            config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(server.api_base, out, models=[model]))
            argv = ["sweep", str(config), *case.split()[1:]]
        else:
            build = _optimize if command == "optimize" else _evaluate
            argv = build(server.api_base, out, "--timeout", "1", "--num-retries", "1")
        started = time.monotonic()
        code, output = run_cli(argv, tmp_path / "run.log", child_env(tmp_path / "cache"), timeout=240)
        took = time.monotonic() - started
        attempts = server.requests
    assert code == 2, output[-3000:]
    assert "Traceback" not in output
    (line,) = error_lines(output)
    assert "stopped answering" in line and server.api_base in line and "--timeout" in line, line
    # One call's attempts decide, not every call's timeouts in turn.
    assert attempts <= SILENCE_CASES[case], attempts
    if command == "sweep":  # every optimization cell ends with the verdict, none waits out its own calls
        log = (out / "logs" / "helm-optimizer.log").read_text(encoding="utf-8")
        for optimizer in ("LabeledFewShot", "BootstrapFewShotWithRandomSearch"):
            assert f"{optimizer} failed: The model server at {server.api_base} stopped answering" in log, log[-3000:]
    assert took < 120, f"{took:.0f} s"
    _nothing_written(out)


def test_progress_shows_calls_that_keep_waiting(tmp_path: Path) -> None:
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=120.0) as server:  # type: ignore[arg-type]
        child = start_cli(_evaluate(server.api_base, tmp_path / "out", "--timeout", "300"), tmp_path / "run.log",
                          child_env(tmp_path / "cache"))
        wait_for(lambda: "LM call(s) waiting, the longest" in child.tail(), 90, "a waiting-calls line", child)
        assert child.process.exitcode is None, child.tail()
        os.kill(child.process.pid, signal.SIGINT)
        assert child.wait(60) == INTERRUPTED
    log = (tmp_path / "out" / "logs" / "helm-optimizer.log").read_text(encoding="utf-8")
    assert "LM call(s) waiting, the longest" in log
    assert records(tmp_path / "out") == [] if (tmp_path / "out" / "evaluations").is_dir() else True
