"""helm-optimizer optimize: every optimizer, reproducible agents, caching, budgets, secrets, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helm_optimizer.config import LMConfig, OptimizeConfig
from helm_optimizer.errors import BudgetExceededError, ModelError, UnknownNameError
from helm_optimizer.optimize import optimize
from helm_optimizer.optimizers import OPTIMIZERS
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.conftest import REPO

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"
SMALL_OPTIONS = {
    "BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 2},
    "MIPROv2": {"num_candidates": 2, "num_trials": 2},
    "GEPA": {"max_metric_calls": 30},
    "SIMBA": {"max_steps": 1, "num_candidates": 2, "bsize": 4},
}


def _config(server: FakeOpenAIServer, out: Path, optimizer: str, scenario: str = "times_tables",
            **kwargs: object) -> OptimizeConfig:
    fields: dict[str, object] = {
        "scenario": scenario, "optimizer": optimizer, "output_dir": out, "num_threads": 4,
        "lm": LMConfig(model="openai/fake-a", api_base=server.api_base),
        "optimizer_options": SMALL_OPTIONS.get(optimizer, {}), "max_bootstrapped_demos": 2, "max_labeled_demos": 2,
    }
    fields.update(kwargs)
    return OptimizeConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server() -> object:
    with FakeOpenAIServer(accuracy=0.6, demo_accuracy=0.9) as fake:
        yield fake


@pytest.mark.parametrize("optimizer", OPTIMIZERS.names())
def test_every_optimizer_writes_a_loadable_agent(optimizer: str, server: FakeOpenAIServer, tmp_path: Path,
                                                 example_plugin: str) -> None:
    import dspy

    from helm_optimizer.agents.store import load_agent, read_meta

    result = optimize(_config(server, tmp_path, optimizer), plugins=(example_plugin,))
    (agent,) = result.agents
    assert agent.status == "written" and agent.path.name == f"{optimizer}.json"
    assert agent.path.parent == tmp_path / "agents" / "times_tables" / "openai" / "fake-a"
    program = load_agent(agent.path)
    assert isinstance(program, dspy.Module)
    # DSPy's own loader reads our files too
    meta = read_meta(agent.path)
    assert meta is not None and meta.schema_version == 2
    kind = meta.program
    fresh = dspy.ChainOfThought("inputs -> output") if kind == "cot" else dspy.Predict("inputs -> output")
    fresh.load(str(agent.path))
    assert meta.seed == 0 and meta.data.train_size + meta.data.val_size == 5
    assert set(meta.versions) >= {"python", "dspy", "crfm-helm", "helm-optimizer"}


@pytest.mark.parametrize("optimizer", ["MIPROv2", "BootstrapFewShotWithRandomSearch"])
def test_demo_limits_on_a_medical_slice(optimizer: str, server: FakeOpenAIServer, tmp_path: Path) -> None:
    from helm_optimizer.agents.store import load_agent

    config = _config(server, tmp_path, optimizer, scenario="head_qa", data_dir=DEMO_DATA, limit=12,
                     max_bootstrapped_demos=1, max_labeled_demos=2)
    (agent,) = optimize(config).agents
    for predictor in load_agent(agent.path).predictors():
        demos = [dict(d) for d in predictor.demos]
        assert len([d for d in demos if d.get("augmented")]) <= 1
        assert len(demos) <= 2


def test_same_seed_same_bytes_other_seed_other_search(server: FakeOpenAIServer, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        config = _config(server, tmp_path / name, "BootstrapFewShotWithRandomSearch", seed=seed, scenario="head_qa",
                         data_dir=DEMO_DATA, limit=12)
        (agent,) = optimize(config).agents
        runs[name] = agent.path.read_bytes()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_repeat_costs_zero_calls_and_existing_agents_are_kept(tmp_path: Path, example_plugin: str) -> None:
    with FakeOpenAIServer() as fake:
        config = _config(fake, tmp_path, "BootstrapFewShot")
        first = optimize(config, plugins=(example_plugin,))
        calls = fake.stats()["completions"]
        assert calls > 0 and first.lm_calls == calls
        again = optimize(config, plugins=(example_plugin,))
        assert again.agents[0].status == "up to date" and fake.stats()["completions"] == calls
        forced = optimize(config.model_copy(update={"force": True}), plugins=(example_plugin,))
        assert forced.agents[0].status == "written"
        assert fake.stats()["completions"] == calls  # every answer came from the LM cache
        assert forced.agents[0].path.read_bytes() == first.agents[0].path.read_bytes()
        # Another configuration: the agent no longer matches, so it is rebuilt and the old pair kept aside.
        rebuilt = optimize(config.model_copy(update={"seed": 9}), plugins=(example_plugin,))
        assert rebuilt.agents[0].status == "written" and rebuilt.agents[0].meta.seed == 9
        kept = sorted(p.name for p in rebuilt.agents[0].path.parent.glob("BootstrapFewShot.*replaced-*.json"))
        assert len(kept) == 2 and kept[0].startswith("BootstrapFewShot.meta.replaced-")
        # A damaged metadata file is rebuilt too, never a traceback.
        meta = rebuilt.agents[0].path.with_name("BootstrapFewShot.meta.json")
        meta.write_text('{"schema_version": 2, "scen')
        again = optimize(config.model_copy(update={"seed": 9}), plugins=(example_plugin,))
        assert again.agents[0].status == "written"


def test_budget_stops_cleanly_without_writing(server: FakeOpenAIServer, tmp_path: Path, example_plugin: str) -> None:
    config = _config(server, tmp_path, "BootstrapFewShotWithRandomSearch", max_calls=3, cache=False)
    with pytest.raises(BudgetExceededError, match="max-calls 3"):
        optimize(config, plugins=(example_plugin,))
    assert not list((tmp_path / "agents").rglob("*.json")) if (tmp_path / "agents").exists() else True


def test_api_key_never_reaches_a_file(tmp_path: Path, example_plugin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = "sk-SENTINEL-7f3a9c1e5b"
    monkeypatch.setenv("HOPT_TEST_KEY", sentinel)
    with FakeOpenAIServer() as fake:
        config = _config(fake, tmp_path, "MIPROv2", lm=LMConfig(model="openai/fake-a", api_base=fake.api_base,
                                                                 api_key_env="HOPT_TEST_KEY"))
        optimize(config, plugins=(example_plugin,))
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and sentinel.encode() in p.read_bytes()]
    assert leaked == []


def test_unparseable_answers_are_counted_and_the_run_continues(tmp_path: Path) -> None:
    with FakeOpenAIServer(garbage_rate=0.3) as fake:
        config = _config(fake, tmp_path, "BootstrapFewShot", scenario="head_qa", data_dir=DEMO_DATA, limit=16)
        (agent,) = optimize(config).agents
        assert fake.stats().get("garbage_answers", 0) > 0
    assert agent.usage["parse_failures"] > 0
    assert agent.meta.usage["parse_failures"] == agent.usage["parse_failures"]


def test_unknown_optimizer_lists_known(server: FakeOpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as info:
        optimize(_config(server, tmp_path, "MiproV2"))
    assert "Did you mean 'MIPROv2'" in str(info.value)


def test_missing_key_and_unreachable_server_fail_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        optimize(OptimizeConfig(scenario="head_qa", lm=LMConfig(model="openai/gpt-4o"), output_dir=tmp_path))


def test_reference_tool_agents_load_and_run(tmp_path: Path) -> None:
    import dspy

    from helm_optimizer.agents.store import load_agent
    from helm_optimizer.lm import adapter_for, build_lm

    fixtures = REPO / "tests" / "fixtures" / "agents"
    with FakeOpenAIServer() as fake:
        cfg = LMConfig(model="openai/fake-a", api_base=fake.api_base)
        lm = build_lm(cfg, cache=False)
        for name in ("reference_dspy_3.0.3_cot.json", "reference_dspy_2.6.5_cot.json",
                     "reference_dspy_2.5_cot.json", "reference_dspy_3.0.3_predict.json"):
            program = load_agent(fixtures / name)
            with dspy.context(lm=lm, adapter=adapter_for(cfg)):
                prediction = program(inputs="Question: What is 20+22=?\nAnswer:")
            assert prediction.output == "42", name
        v30 = load_agent(fixtures / "reference_dspy_3.0.3_cot.json")
        assert len(v30.predict.demos) == 3
        assert v30.predict.signature.instructions == "Answer the arithmetic question with a number."


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"predict": {"demos": [', "not valid JSON"),
        ("[1, 2]", "JSON list"),
        ('{"module": {}}', "found keys: module"),
        ('{"predict": {"demos": "x", "signature": {"fields": []}}}', "'demos' must be a list"),
        ('{"predict": {"demos": []}}', "no 'signature'"),
    ],
)
def test_broken_agent_files_give_one_line_errors(tmp_path: Path, content: str, fragment: str) -> None:
    from helm_optimizer.agents.store import load_agent
    from helm_optimizer.errors import AgentError

    path = tmp_path / "agent.json"
    path.write_text(content)
    with pytest.raises(AgentError) as info:
        load_agent(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    json.dumps(str(info.value))


@pytest.mark.parametrize("optimizer", ["BootstrapFewShotWithRandomSearch", "MIPROv2"])
def test_num_threads_bounds_the_lm_calls_in_flight(optimizer: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The pools keep spare threads for formatting and scoring, but --num-threads still bounds the LM calls."""
    import threading

    import dspy

    lock = threading.Lock()
    in_flight = [0, 0]  # now, peak
    real_call = dspy.LM.__call__

    def call(self: object, *args: object, **kwargs: object) -> object:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            return real_call(self, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(dspy.LM, "__call__", call)
    with FakeOpenAIServer(accuracy=0.5, latency=0.02) as fake:
        optimize(_config(fake, tmp_path, optimizer, scenario="head_qa", data_dir=DEMO_DATA, limit=16, num_threads=3,
                         cache=False))
    assert in_flight[1] == 3
