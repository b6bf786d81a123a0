"""Running the CLI in process for bad-input cases, and an output directory holding earlier results."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_optimizer.cli.main import main
from tests._logging import keep_root_logging  # noqa: F401 (autouse fixture for these tests)
from tests.conftest import REPO
from tests.faults.procs import KEY_ENV, SENTINEL_KEY, snapshot

AGENT_FIXTURES = REPO / "tests" / "fixtures" / "agents"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one error line; fails unless the error is exactly one line and the last thing printed."""
        assert "Traceback" not in self.err + self.out, self.err
        lines = [line for line in self.err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, self.err
        assert lines[-1] == errors[0], f"the error must be the last line printed:\n{self.err}"
        return errors[0]


CliRunner = Callable[[list[str]], CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv(KEY_ENV, SENTINEL_KEY)
    monkeypatch.delenv("HOPT_UNSET_KEY_VARIABLE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(argv: list[str]) -> CliResult:
        capsys.readouterr()
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code=code, out=captured.out, err=captured.err)

    return run


@dataclass
class Earlier:
    """An output directory with an agent, its metadata and an evaluation record from an earlier run."""

    root: Path
    files: dict[str, str]

    def assert_intact(self) -> None:
        assert snapshot(self.root) == self.files


@pytest.fixture
def earlier(tmp_path: Path) -> Earlier:
    root = tmp_path / "earlier-output"
    agent = root / "agents" / "head_qa" / "openai" / "faults-model" / "LabeledFewShot.json"
    agent.parent.mkdir(parents=True)
    shutil.copy(AGENT_FIXTURES / "reference_dspy_3.0.3_cot.json", agent)
    agent.with_name("LabeledFewShot.meta.json").write_text('{"format": 1, "scenario": "head_qa"}\n')
    record = root / "evaluations" / "head_qa" / "openai" / "faults-model" / "baseline.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"method": "baseline", "mean": 0.5}\n')
    return Earlier(root, snapshot(root))
