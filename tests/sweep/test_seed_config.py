"""Sweep settings for optimizer seeds and the baseline's model, checked before any LM call."""

from __future__ import annotations

from pathlib import Path

import pytest

from helm_optimizer.errors import ConfigError
from helm_optimizer.naming import agent_deployment_name, agent_path, record_path
from helm_optimizer.sweep.config import SweepConfig, load_sweep_config, validate_sweep
from helm_optimizer.sweep.run import plan_cells
from tests.sweep.conftest import sweep_dict, write_config


def test_seeds_plan_one_optimization_cell_per_seed(tmp_path: Path) -> None:
    config = SweepConfig.model_validate(sweep_dict("http://127.0.0.1:1/v1", tmp_path, seeds=[0, 1, 2]))
    optimize, evaluate = plan_cells(config)
    assert len(optimize) == 2 * 2 * 2 * 3 and len(evaluate) == 2 * 2
    assert sorted({c.optimizer_seed for c in optimize}) == [0, 1, 2]
    assert "seed 2" in optimize[2].label(config)
    single = SweepConfig.model_validate(sweep_dict("http://127.0.0.1:1/v1", tmp_path))
    assert {c.optimizer_seed for c in plan_cells(single)[0]} == {None}


def test_duplicate_seeds_are_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path / "s.yaml", sweep_dict("http://127.0.0.1:1/v1", tmp_path, seeds=[0, 0]))
    with pytest.raises(ConfigError, match=r"s\.yaml:\d+: seeds: lists a name twice"):
        load_sweep_config(path)


def test_a_baseline_of_another_model_is_refused_at_validation(tmp_path: Path) -> None:
    data = sweep_dict("http://127.0.0.1:1/v1", tmp_path)
    data["models"][0]["helm_deployment"] = "openai/gpt-4o-2024-05-13"
    with pytest.raises(ConfigError, match=r"serves openai/gpt-4o-2024-05-13.*allow_model_mismatch: true"):
        validate_sweep(SweepConfig.model_validate(data))
    data["models"][0]["allow_model_mismatch"] = True
    validate_sweep(SweepConfig.model_validate(data))
    assert SweepConfig.model_validate(data).models[0].lm().model == "openai/fake-a"


def test_seeded_names() -> None:
    assert agent_path("a", "s", "m/x", "MIPROv2", 1, 2).name == "MIPROv2.seed2.fold1.json"
    assert agent_path("a", "s", "m/x", "MIPROv2").name == "MIPROv2.json"
    assert record_path("o", "s", "m", "MIPROv2", None, 0).name == "MIPROv2.seed0.json"
    assert agent_deployment_name("m", "MIPROv2", "s", 0, 1) != agent_deployment_name("m", "MIPROv2", "s", 0, 2)


def test_listed_agents_carry_their_seed(tmp_path: Path) -> None:
    from helm_optimizer.agents.store import list_agents

    for name in ("LabeledFewShot.seed1.fold0.json", "LabeledFewShot.json"):
        path = tmp_path / "head_qa" / "openai" / "m" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    found = {a.path.name: (a.optimizer, a.seed, a.fold) for a in list_agents(tmp_path)}
    assert found == {"LabeledFewShot.json": ("LabeledFewShot", None, None),
                     "LabeledFewShot.seed1.fold0.json": ("LabeledFewShot", 1, 0)}
