"""A small sweep on the fake server: 2 scenarios x 2 optimizers x 2 models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURE_DATA, REPO

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"
CAP = 4  # requests the sweep server answers at once; beyond it, 429 with Retry-After


def sweep_dict(api_base: str, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "output_dir": str(output_dir),
        "suite": "test-sweep",
        "seed": 0,
        "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)},
                      {"entry": "medbullets", "data_dir": str(FIXTURE_DATA)}],
        "optimizers": ["LabeledFewShot", "BootstrapFewShotWithRandomSearch"],
        # Both models at one provider that takes CAP requests at once: each model's share is declared.
        "models": [{"model": "openai/fake-a", "api_base": api_base, "limits": {"max_concurrency": CAP // 2}},
                   {"model": "openai/fake-b", "api_base": api_base, "limits": {"max_concurrency": CAP // 2}}],
        "methods": ["baseline", "ZeroShotCoT"],
        "max_bootstrapped_demos": 1,
        "max_labeled_demos": 2,
        "num_threads": 4,
        "limit": 8,
        "eval_limit": 8,
        "optimizer_options": {"BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 2}},
        "summarize": False,
    }
    config.update(overrides)
    return config


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sweep_server() -> Any:
    from helm_optimizer.serving.fake import FakeOpenAIServer

    with FakeOpenAIServer(accuracy=0.5, demo_accuracy=0.8, seed=1, max_concurrency=CAP, cap_retry_after=0.2) as server:
        yield server
