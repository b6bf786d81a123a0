"""Shared fixtures: a fake OpenAI-compatible server on 127.0.0.1, isolated caches, example plugin paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# The sample plugin package of examples/my_plugin: its run spec module, and the run spec it registers.
EXAMPLE_PLUGIN = REPO / "examples" / "my_plugin" / "src" / "example_times_tables" / "run_specs.py"
EXAMPLE_RUN_SPEC = "times_tables"
FIXTURE_DATA = REPO / "tests" / "fixtures" / "medical"


def demo_answer_key() -> dict[str, str]:
    """Question text -> gold letter of the bundled HEAD-QA slice, for a fake server that knows the answers."""
    import json

    key = {}
    for path in (REPO / "src" / "helm_optimizer" / "data" / "demo" / "head_qa" / "HEAD_EN").glob("*.json"):
        for exam in json.loads(path.read_text(encoding="utf-8"))["exams"].values():
            for question in exam["data"]:
                key[question["qtext"]] = "ABCDE"[int(question["ra"]) - 1]
    return key


def shared_data_or_skip() -> Path:
    if not (SHARED_DATA / "head_qa").is_dir():
        pytest.skip(f"needs the real benchmark files in {SHARED_DATA} (absent on this machine)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own dataset/server cache directory; nothing leaks between tests."""
    monkeypatch.setenv("HELM_OPTIMIZER_CACHE_DIR", str(tmp_path_factory.mktemp("hopt-cache")))


@pytest.fixture
def fake_server() -> Iterator[object]:
    """A fresh scripted server (all answers right) on a free loopback port."""
    from helm_optimizer.serving.fake import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def example_plugin() -> str:
    return str(EXAMPLE_PLUGIN)
