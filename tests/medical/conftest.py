"""Shared fixtures for the medical scenario and metric tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_optimizer._env import prepare_offline_environment

prepare_offline_environment()

from helm.benchmark.adaptation.request_state import RequestState  # noqa: E402
from helm.benchmark.scenarios.scenario import Instance  # noqa: E402
from helm.common.request import GeneratedOutput, Request, RequestResult  # noqa: E402

from helm_optimizer.scenarios.medical import DATA_DIR_ENV  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "medical"
REAL_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests choose their data directory explicitly; a value set in the shell must not leak in."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    yield


@pytest.fixture
def fixture_dir() -> Path:
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (REAL_DATA_DIR / "README.md").is_file():
        pytest.skip(
            f"real benchmark data not found at {REAL_DATA_DIR} (the shared/ directory beside the repo)"
        )
    return REAL_DATA_DIR


def as_dicts(instances: list[Instance]) -> list[dict[str, Any]]:
    """Instances as plain data; ``Instance`` compares by identity (``eq=False``)."""
    return [dataclasses.asdict(instance) for instance in instances]


def request_state(instance: Instance, completion: str | None) -> RequestState:
    """A HELM RequestState answering ``instance`` with ``completion`` (``None``: no completion at all)."""
    completions = [] if completion is None else [GeneratedOutput(text=completion, logprob=0.0, tokens=[])]
    return RequestState(
        instance=instance,
        reference_index=None,
        request_mode=None,
        train_trial_index=0,
        output_mapping=None,
        request=Request(model="simple/model1", model_deployment="simple/model1", prompt=instance.input.text),
        result=RequestResult(success=True, embedding=[], completions=completions, cached=False),
        num_train_instances=0,
        prompt_truncated=False,
    )
