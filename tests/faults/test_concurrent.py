"""Two runs on one output directory: the second refuses at once, the first finishes untouched.

Two sweeps share a directory lock; two ``optimize`` (or ``evaluate``) runs of the same cell share
that cell's lock, so the second does not pay for the same calls again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_optimizer.cli.main import main
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.faults.conftest import SERVER_SETTINGS, Reference
from tests.faults.procs import (
    DEMO_DATA,
    KEY_ENV,
    MODEL,
    SENTINEL_KEY,
    agent_bytes,
    check_json_complete,
    child_env,
    start_cli,
    table_rows,
    tiny_sweep,
    wait_for,
    write_yaml,
)


def test_second_sweep_on_the_same_directory_is_refused(reference: Reference, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=0.05) as server:  # type: ignore[arg-type]
        config = write_yaml(tmp_path / "sweep.yaml", tiny_sweep(server.api_base, out))
        first = start_cli(["sweep", str(config)], tmp_path / "first.log", child_env(tmp_path / "cache"))
        wait_for(lambda: (out / "sweep.json").is_file(), 60, "the first sweep to hold the directory", first)
        assert first.process.exitcode is None, "the first sweep ended before the second one started"
        marker = (out / "sweep.json").stat().st_ino  # rewritten (a new inode) by whoever holds the lock
        with pytest.raises(SystemExit) as info:
            main(["sweep", str(config)])
        err = capsys.readouterr().err
        still_running = first.process.exitcode is None
        assert (out / "sweep.json").stat().st_ino == marker  # the refused sweep wrote nothing
        assert first.wait(240) == 0, first.tail()
    assert still_running, "the refusal must happen while the first sweep is running"
    assert info.value.code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: Another sweep is using") and str(out) in lines[0]
    assert "wait for it to finish, or use another --output-dir" in lines[0]
    check_json_complete(out)
    assert table_rows(out) == table_rows(reference.output_dir)
    assert agent_bytes(out) == agent_bytes(reference.output_dir)


def _cell_argv(command: str, api_base: str, out: Path) -> list[str]:
    common = ["--scenario", "head_qa", "--model", MODEL, "--api-base", api_base, "--api-key-env", KEY_ENV,
              "--data-dir", str(DEMO_DATA), "--output-dir", str(out)]
    if command == "optimize":
        return ["optimize", *common, "--optimizer", "LabeledFewShot", "--limit", "8"]
    return ["evaluate", *common, "--methods", "baseline,ZeroShotCoT", "--max-eval-instances", "8"]


@pytest.mark.parametrize("command", ["optimize", "evaluate"])
def test_second_run_of_the_same_cell_is_refused_and_a_rerun_reuses_the_first(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    out = tmp_path / "out"
    with FakeOpenAIServer(**SERVER_SETTINGS, latency=1.0) as server:  # type: ignore[arg-type]
        argv = _cell_argv(command, server.api_base, out)
        first = start_cli(argv, tmp_path / "first.log", child_env(tmp_path / "cache"))
        wait_for(lambda: server.requests > 0, 120, "the first run to call the model", first)
        assert first.process.exitcode is None, first.tail()
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert first.process.exitcode is None, "the refusal must happen while the first run is working"
        assert first.wait(240) == 0, first.tail()
        paid = server.completions
        main(argv)  # afterwards: succeeds, reusing everything the first run wrote
        assert server.completions == paid
        assert "up to date" in capsys.readouterr().err
    assert info.value.code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert errors[0].startswith(f"error: Another {command} is using") and str(out) in errors[0], errors[0]
    assert "a rerun then reuses its results" in errors[0]
    check_json_complete(out)
