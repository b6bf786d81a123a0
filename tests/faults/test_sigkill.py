"""SIGKILL a sweep at seeded random points, again and again: every rerun resumes, no JSON is ever partial."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS, Reference
from tests.faults.procs import (
    agent_bytes,
    check_json_complete,
    child_env,
    start_cli,
    table_rows,
    tiny_sweep,
    wait_for,
    write_yaml,
)

KILLS = 10
SEED = 20261125


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _progress(out: Path) -> tuple[int, int, bool]:
    agents = len([p for p in (out / "agents").rglob("*.json") if not p.name.endswith(".meta.json")]) \
        if (out / "agents").is_dir() else 0
    evaluations = len(list((out / "evaluations").rglob("*.json"))) if (out / "evaluations").is_dir() else 0
    return agents, evaluations, (out / "report" / "report.json").is_file()


@pytest.mark.slow
def test_repeated_sigkill_then_resume_gives_the_uninterrupted_table(reference: Reference, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kills: list[tuple[float, tuple[int, int, bool]]] = []
    completed_runs = 0
    epoch = 0
    # A run does ~5 s of work once it calls the model (optimizations and evaluations side by side);
    # kills land anywhere in it (optimization, evaluation, reporting), and a run that finishes first
    # starts the next epoch in a fresh directory.
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=0.05) as server:  # type: ignore[arg-type]
        out = tmp_path / f"out{epoch}"
        config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(server.api_base, out))
        env = child_env(tmp_path / "cache")
        for run in range(4 * KILLS):
            if len(kills) >= KILLS:
                break
            marker = out / "sweep.json"
            before, requests = _inode(marker), server.requests
            child = start_cli(["sweep", str(config)], tmp_path / f"run{run}.log", env)
            # The delay counts from this run's first LM call (a run with nothing left to call ends on its
            # own): the seconds before, loading HELM and DSPy in the command and in the template process
            # its workers fork from, hold no work to interrupt.
            wait_for(lambda m=marker, b=before: _inode(m) not in (None, b), 60, "the sweep to start", child)
            wait_for(lambda r=requests: server.requests > r, 60, "the sweep's first LM call", child)
            # A step slower than the delays (one HELM run on a loaded machine) would catch every kill;
            # while kills keep landing at the same progress, allow them to land later.
            repeats = 0  # earlier kills that landed at the same progress as the last one
            while repeats + 1 < len(kills) and kills[-2 - repeats][1] == kills[-1][1]:
                repeats += 1
            delay = rng.uniform(0.3, 4.0 + 2.0 * min(repeats, 4))
            child.process.join(delay)
            if child.process.exitcode is None:
                os.kill(child.process.pid, signal.SIGKILL)
                child.process.join(30)
            if child.process.exitcode == -signal.SIGKILL:
                kills.append((round(delay, 2), _progress(out)))
            else:  # the rerun finished before the kill landed: it must have succeeded
                assert child.process.exitcode == 0, child.tail()
                completed_runs += 1
                assert table_rows(out) == table_rows(reference.output_dir)
                epoch += 1  # start over in a fresh directory until enough kills landed mid-run
                out = tmp_path / f"out{epoch}"
                config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(server.api_base, out))
            # After every kill: every JSON file we wrote parses, and so do the HELM runs records point to.
            if out.is_dir():
                check_json_complete(out)
        assert len(kills) >= KILLS, kills
        final = start_cli(["sweep", str(config)], tmp_path / "final.log", env)
        assert final.wait(240) == 0, final.tail()
    assert check_json_complete(out) > 0
    assert table_rows(out) == table_rows(reference.output_dir)
    assert agent_bytes(out) == agent_bytes(reference.output_dir)
    # The kills hit different stages of the work, not always the same one, and not only before any result.
    stages = {progress for _, progress in kills}
    assert len(stages) >= 2 and stages - {(0, 0, False)}, kills
    assert not list(out.rglob(".*.tmp")), "an interrupted atomic write left its temporary file behind"
    print("kills (delay s, (agents, records, report)):", kills, "completed reruns:", completed_runs)
