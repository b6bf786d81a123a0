"""A sweep re-run whose every cell is up to date still summarizes (and its display rows end done)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.run import run_sweep
from tests.conftest import REPO

pytestmark = pytest.mark.slow

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"


def test_rerun_summarizes_without_the_first_runs_environment(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[dict[str, Any]] = []
    with FakeOpenAIServer() as server:
        config = SweepConfig.model_validate({
            "output_dir": str(tmp_path / "out"), "suite": "rerun", "seed": 0,
            "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)}], "optimizers": ["LabeledFewShot"],
            "models": [{"model": "openai/fake-rerun", "api_base": server.api_base}], "methods": ["baseline"],
            "max_labeled_demos": 1, "num_threads": 2, "limit": 4, "eval_limit": 4, "summarize": True,
        })
        assert run_sweep(config).summarize_path is not None
        # a new process: nothing the first run put in the environment
        for name in [n for n in os.environ if n.startswith("HELM_OPTIMIZER_DATA_DIR_")]:
            monkeypatch.delenv(name)
        result = run_sweep(config, progress=events.append)
    assert result.failed == [] and result.summarize_path is not None
    assert {c["status"] for c in result.cells.values()} == {"skipped"}
    finals = {e["done"]["cell"]: e["done"]["status"] for e in events if "done" in e}
    assert finals["helm-summarize"] == "done" and finals["report"] == "done"
