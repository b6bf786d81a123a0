"""Ctrl-C (a real SIGINT) at each stage: exit 130 with one line, at once, and a rerun finishes the work.

Each run talks to a server that takes a minute per answer, so LM calls are in flight when the
signal lands: the process must not wait for them (HELM's and DSPy's thread pools would), must not
print a traceback, and must leave only complete files behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_optimizer.cli.interrupt import GRACE_S, INTERRUPTED, MESSAGE
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS, Reference
from tests.faults.procs import (
    DEMO_DATA,
    KEY_ENV,
    MODEL,
    check_json_complete,
    child_env,
    run_cli,
    start_cli,
    table_rows,
    tiny_sweep,
    wait_for,
    write_yaml,
)

SLOW = 60.0  # seconds per answer: every call the run makes is still in flight when Ctrl-C lands


@dataclass(frozen=True)
class Stage:
    argv: Callable[[str, Path, Path], list[str]]  # (api base, output dir, work dir) -> command line
    ready: Callable[[FakeOpenAIServer, Path], bool]  # the event after which the signal is sent
    reuse_agents: bool = False  # start from the reference sweep's agents (the sweep goes straight to evaluating)


def _optimize(api_base: str, out: Path, _work: Path) -> list[str]:
    return ["optimize", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--optimizer", "LabeledFewShot", "--data-dir", str(DEMO_DATA), "--limit", "8", "--output-dir", str(out)]


def _evaluate(api_base: str, out: Path, _work: Path) -> list[str]:
    return ["evaluate", "--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
            "--methods", "baseline,ZeroShotCoT", "--data-dir", str(DEMO_DATA), "--max-eval-instances", "8",
            "--output-dir", str(out)]


def _sweep(api_base: str, out: Path, work: Path) -> list[str]:
    return ["sweep", str(write_yaml(work / "sweep.yaml", tiny_sweep(api_base, out)))]


def _calls_in_flight(server: FakeOpenAIServer, _out: Path) -> bool:
    return server.requests > 0


STAGES = {
    "optimize, LM calls in flight": Stage(_optimize, _calls_in_flight),
    "evaluate, HELM requests in flight": Stage(_evaluate, _calls_in_flight),
    "sweep, loading before any call": Stage(_sweep, lambda _s, out: (out / "sweep.json").is_file()),
    "sweep, optimizing": Stage(_sweep, _calls_in_flight),
    "sweep, evaluating": Stage(_sweep, _calls_in_flight, reuse_agents=True),
}


@pytest.mark.parametrize("name", list(STAGES))
def test_ctrl_c_exits_130_with_one_line_and_a_rerun_resumes(name: str, reference: Reference,
                                                            tmp_path: Path) -> None:
    stage = STAGES[name]
    out = tmp_path / "out"
    if stage.reuse_agents:
        shutil.copytree(reference.output_dir / "agents", out / "agents")
    env = child_env(tmp_path / "cache")
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=SLOW) as slow:  # type: ignore[arg-type]
        child = start_cli(stage.argv(slow.api_base, out, tmp_path), tmp_path / "interrupted.log", env)
        wait_for(lambda: stage.ready(slow, out), 120, f"the run to reach: {name}", child)
        assert child.process.exitcode is None, child.tail()
        os.kill(child.process.pid, signal.SIGINT)
        sent = time.monotonic()
        code = child.wait(120)
        waited = time.monotonic() - sent
    output = child.tail(100_000)
    assert code == INTERRUPTED, output[-3000:]
    # It left while its calls were still waiting for answers (they would have taken a minute).
    assert waited < GRACE_S + 8, f"{waited:.1f} s after Ctrl-C"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output and not [line for line in lines if line.startswith("error:")], output[-3000:]
    assert lines.count(MESSAGE) == 1 and lines[-1] == MESSAGE, output[-3000:]
    if out.is_dir():
        check_json_complete(out)
        assert not list(out.rglob(".*.tmp"))
    if name != "sweep, evaluating":
        return
    # The same command against a server that answers: the run finishes with the uninterrupted table.
    with FakeOpenAIServer(**SERVER_SETTINGS) as server:  # type: ignore[arg-type]
        code, rerun = run_cli(stage.argv(server.api_base, out, tmp_path), tmp_path / "rerun.log", env)
    assert code == 0, rerun[-3000:]
    assert table_rows(out) == table_rows(reference.output_dir)
