"""``helm-optimizer agents export AGENT [--format text|chat|helm] [--check]`` on a fake-server agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_optimizer.cli.main import main
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests._logging import keep_root_logging  # noqa: F401  (in-process CLI runs reconfigure logging)
from tests.plugin.helpers import LOCAL_PLUGIN

pytestmark = pytest.mark.slow  # real HELM runs

MODEL = "openai/hopt-export-model"


@dataclass
class Evaluated:
    out: Path
    agent: Path
    server: FakeOpenAIServer


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evaluated]:
    from helm_optimizer.config import LMConfig, OptimizeConfig
    from helm_optimizer.evaluate import EvaluationRequest, evaluate_methods
    from helm_optimizer.optimize import optimize

    out = tmp_path_factory.mktemp("export") / "out"
    with FakeOpenAIServer() as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELM_OPTIMIZER_CACHE_DIR", str(out.parent / "cache"))
        lm = LMConfig(model=MODEL, api_base=server.api_base)
        result = optimize(OptimizeConfig(scenario="local_arith", optimizer="LabeledFewShot", lm=lm, seed=0,
                                         num_threads=2, max_labeled_demos=2, output_dir=out),
                          plugins=(str(LOCAL_PLUGIN),))
        [agent] = result.agents
        evaluate_methods(EvaluationRequest(scenario="local_arith", lm=lm, methods=("baseline", "LabeledFewShot"),
                                           output_dir=out, plugins=(str(LOCAL_PLUGIN),), num_threads=2))
        yield Evaluated(out=out, agent=agent.path, server=server)


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _demos(agent: Path) -> list[dict[str, str]]:
    return json.loads(agent.read_text())["predict"]["demos"] if "predict" in json.loads(agent.read_text()) else \
        json.loads(agent.read_text())["demos"]


def test_text_and_helm_formats_hold_every_demo(evaluated: Evaluated, capsys: pytest.CaptureFixture[str]) -> None:
    demos = _demos(evaluated.agent)
    assert len(demos) == 2
    assert _run(["agents", "export", str(evaluated.agent)]) == 0
    text = capsys.readouterr().out
    assert _run(["agents", "export", str(evaluated.agent), "--format", "helm"]) == 0
    helm = json.loads(capsys.readouterr().out)
    for demo in demos:
        assert demo["inputs"] in text and f"Answer: {demo['output']}" in text
        assert f"{demo['inputs'].rstrip()} {demo['output']}" in helm["instructions_prefix"]
    assert text.rstrip().endswith("{inputs}")
    assert "Given the fields" not in text  # DSPy's default instruction names DSPy's fields: left out
    assert helm["adapter_spec"] == {"max_train_instances": 0}
    assert [e["output"] for e in helm["in_context_examples"]] == [d["output"] for d in demos]


def test_chat_format_is_what_dspy_sends(evaluated: Evaluated, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["agents", "export", str(evaluated.agent), "--format", "chat"]) == 0
    messages = json.loads(capsys.readouterr().out)
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "{inputs}" in messages[-1]["content"]
    assert _demos(evaluated.agent)[0]["inputs"] in messages[1]["content"]


def test_unknown_format_is_one_line(evaluated: Evaluated, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["agents", "export", str(evaluated.agent), "--format", "yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: Unknown --format 'yaml'; use one of: text, chat, helm."


def test_check_scores_the_exported_prompt_in_helm_without_dspy(evaluated: Evaluated,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from helm_optimizer.agents.export import helm_instructions, read_prompt

    record = json.loads((evaluated.out / "evaluations" / "local_arith" / "openai" / "hopt-export-model" /
                         "LabeledFewShot.json").read_text())
    before = evaluated.server.completions
    assert _run(["agents", "export", str(evaluated.agent), "--format", "helm", "--check", "--plugins",
                 str(LOCAL_PLUGIN)]) == 0
    out = capsys.readouterr().out
    assert f"agent (DSPy program):            exact_match {record['mean']:.3f}" in out
    lines = [line for line in out.splitlines() if line.startswith("exported prompt (HELM, no DSPy): exact_match")]
    assert len(lines) == 1, out
    assert "fidelity gap (export − agent):" in out
    runs = evaluated.out / "helm" / "benchmark_output" / "runs" / "helm-optimizer"
    [export_run] = [p for p in runs.iterdir() if "prompt_of=fs-labeledfewshot" in p.name]
    spec = json.loads((export_run / "run_spec.json").read_text())
    assert spec["adapter_spec"]["model_deployment"] == MODEL  # the plain model, not the agent's DSPy client
    states = json.loads((export_run / "scenario_state.json").read_text())["request_states"]
    agent_states = json.loads((evaluated.out / record["run_dir"] / "scenario_state.json").read_text())[
        "request_states"]
    assert sorted(s["instance"]["id"] for s in states) == sorted(s["instance"]["id"] for s in agent_states)
    prefix = helm_instructions(read_prompt(evaluated.agent))
    assert all(s["request"]["prompt"].startswith(prefix) for s in states)
    assert evaluated.server.completions - before == len(states)  # one plain call per instance
