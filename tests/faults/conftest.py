"""A clean reference sweep (run once per session in a warm child) and the fake servers around it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests._logging import keep_root_logging  # noqa: F401 (autouse fixture for these tests)
from tests.faults.procs import child_env, run_cli, tiny_sweep, write_yaml

SERVER_SETTINGS = {"accuracy": 0.5, "demo_accuracy": 0.8, "seed": 1}


@dataclass(frozen=True)
class Reference:
    output_dir: Path
    cache_dir: Path
    config: Path
    completions: int
    output: str


@pytest.fixture(scope="session")
def clean_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(**SERVER_SETTINGS) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="session")
def reference(clean_server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The tiny sweep, uninterrupted, through the CLI (``-vv``: every log line goes to the run log)."""
    base = tmp_path_factory.mktemp("reference")
    out, cache = base / "out", base / "hopt-cache"
    config = write_yaml(base / "sweep.yaml", tiny_sweep(clean_server.api_base, out))
    before = clean_server.completions
    code, output = run_cli(["sweep", str(config), "-vv"], base / "child.log", child_env(cache))
    assert code == 0, output[-3000:]
    return Reference(output_dir=out, cache_dir=cache, config=config,
                     completions=clean_server.completions - before, output=output)
