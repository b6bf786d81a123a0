"""An unwritable output directory or a full disk: one clear line, exit 2, nothing written before is lost.

Root ignores file permissions, so besides a real ``chmod`` (when not root) and a real non-directory
parent (root or not), the read-only directory and the full disk are simulated in a forked run:
``os.open``/``open``/``os.replace``/``os.mkdir`` refuse writes under the directory (EACCES), or
``os.fsync`` of files under it fails with ENOSPC, as a full disk does when the data reaches it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from helm_optimizer.cli.main import main
from tests.faults.conftest import Reference
from tests.faults.procs import (
    KEY_ENV,
    MODEL,
    SENTINEL_KEY,
    agent_bytes,
    check_json_complete,
    child_env,
    error_lines,
    run_cli,
    snapshot,
    table_rows,
    tiny_sweep,
    write_yaml,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _copy(reference: Reference, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(reference.output_dir, out)
    return out


def _one_error(code: int, output: str, *fragments: str) -> str:
    assert code == 2, output[-3000:]
    lines = error_lines(output)
    assert len(lines) == 1, output[-3000:]
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _optimize_argv(reference: Reference, out: Path) -> list[str]:
    config_model = tiny_sweep("http://unused", out)["models"][0]
    return ["optimize", "--scenario", "head_qa", "--model", MODEL, "--optimizer", "LabeledFewShot",
            "--api-base", _api_base(reference), "--api-key-env", config_model["api_key_env"],
            "--data-dir", tiny_sweep("", out)["scenarios"][0]["data_dir"], "--limit", "8", "--max-labeled-demos",
            "2", "--output-dir", str(out), "--force"]


def _api_base(reference: Reference) -> str:
    import yaml

    return str(yaml.safe_load(reference.config.read_text())["models"][0]["api_base"])


def test_output_dir_below_a_file_fails_in_one_line(reference: Reference, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be\n")
    for argv in (["sweep", str(reference.config), "--output-dir", str(blocker / "out")],
                 _optimize_argv(reference, blocker / "out")):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: Cannot write"), err
        assert "not a directory" in lines[0] and "--output-dir" in lines[0]
    assert blocker.read_text() == "a file where a directory should be\n"


@pytest.mark.parametrize("command", ["sweep", "optimize"])
def test_read_only_output_dir_fails_cleanly_and_keeps_results(command: str, reference: Reference,
                                                              tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    before = snapshot(out)
    argv = ["sweep", str(reference.config), "--output-dir", str(out)] if command == "sweep" \
        else _optimize_argv(reference, out)
    code, output = run_cli(argv, tmp_path / "child.log", child_env(tmp_path / "cache"),
                           fault=("readonly", [str(out)]))
    line = _one_error(code, output, "Cannot write", str(out), "permission denied", "--output-dir")
    assert "\n" not in line
    assert snapshot(out) == before  # not one byte changed
    check_json_complete(out)


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions (the simulated case covers it)")
def test_chmod_read_only_agents_dir(reference: Reference, tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    before = snapshot(out)
    agents = out / "agents"
    modes = {}
    for directory in [agents, *[p for p in agents.rglob("*") if p.is_dir()]]:
        modes[directory] = directory.stat().st_mode
        directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, output = run_cli(_optimize_argv(reference, out), tmp_path / "child.log",
                               child_env(tmp_path / "cache"))
    finally:
        for directory, mode in modes.items():
            directory.chmod(mode)
    _one_error(code, output, "permission denied")
    assert snapshot(out) == before


def test_disk_full_everywhere_stops_before_work(reference: Reference, tmp_path: Path) -> None:
    out = _copy(reference, tmp_path)
    before = snapshot(out)
    code, output = run_cli(["sweep", str(reference.config), "--output-dir", str(out)], tmp_path / "child.log",
                           child_env(tmp_path / "cache"), fault=("full", [str(out)]))
    _one_error(code, output, "No space left on the device", "free space")
    assert snapshot(out) == before


def test_disk_full_while_saving_a_new_agent_loses_nothing(reference: Reference, tmp_path: Path) -> None:
    """The sweep gains an optimizer; its agent cannot be written. Every earlier file stays as it was."""
    out = _copy(reference, tmp_path)
    kept = {k: v for k, v in snapshot(out).items()
            if k.startswith(("agents/", "evaluations/", "helm/benchmark_output/"))}
    config = tiny_sweep(_api_base(reference), out)
    config["optimizers"] = [*config["optimizers"], "BootstrapFewShot"]
    path = write_yaml(tmp_path / "sweep.yaml", config)
    # The fault is injected into the writes of the command's own process: the serial executor saves the
    # agents there (the scheduler's worker processes would not see it).
    code, output = run_cli(["sweep", str(path), "--executor", "serial"], tmp_path / "child.log",
                           child_env(tmp_path / "cache"), fault=("full", [str(out / "agents")]))
    line = _one_error(code, output, "cells failed", "BootstrapFewShot", "No space left on the device")
    assert "run the same command again" in line
    after = snapshot(out)
    assert {k: after.get(k) for k in kept} == kept
    assert not [k for k in after if k.startswith("agents/") and k not in kept and not k.endswith(".meta.json")]
    check_json_complete(out)
    assert agent_bytes(out) == agent_bytes(reference.output_dir)
    assert table_rows(out) == table_rows(reference.output_dir)
