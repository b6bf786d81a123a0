"""End to end on the fake server: optimize an agent, register it, helm-run three methods, helm-summarize.

Baseline (HELM's prompt and deployment), the DSPy zero-shot CoT deployment and the optimized
(LabeledFewShot) agent's deployment are evaluated by one plain ``helm-run``; scores are read back
from HELM's own JSON. A second identical ``helm-run`` must be answered entirely from HELM's cache,
and the API key passed through ``api_key_env`` must reach no file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.plugin.helpers import (
    KEY_ENV,
    KEY_SENTINEL,
    LOCAL_PLUGIN,
    MODEL,
    helm_run,
    run_name,
    run_tool,
    stat_mean,
    subprocess_env,
)

pytestmark = pytest.mark.slow  # real helm-run subprocesses

SUITE = "leaderboard"
DEPLOYMENTS = {
    "baseline": MODEL,
    "zs-cot": f"{MODEL}-dspy-zs-cot",
    "agent": f"{MODEL}-dspy-fs-labeledfewshot",
}


@dataclass
class Leaderboard:
    root: Path
    agents_dir: Path
    prod_env: Path
    output: Path
    agent_path: Path
    first_run_requests: int
    rerun_requests: int
    rerun_log: str


@pytest.fixture(scope="module")
def board(server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Leaderboard:
    from helm_optimizer.config import LMConfig, OptimizeConfig
    from helm_optimizer.optimize import optimize

    root = tmp_path_factory.mktemp("leaderboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY_SENTINEL)
        mp.setenv("HELM_OPTIMIZER_CACHE_DIR", str(root / "hopt-cache"))
        result = optimize(
            OptimizeConfig(scenario="local_arith", optimizer="LabeledFewShot", seed=0, num_threads=2,
                           lm=LMConfig(model=MODEL, api_base=server.api_base, api_key_env=KEY_ENV),
                           output_dir=root / "opt"),
            plugins=(str(LOCAL_PLUGIN),),
        )
    [agent] = result.agents
    assert agent.status == "written"

    prod_env = root / "prod_env"
    registered = run_tool(["helm-optimizer", "register", str(root / "opt" / "agents"), "--local-path", str(prod_env)],
                          env=subprocess_env(root), cwd=root)
    for deployment in DEPLOYMENTS.values():
        assert f"model={deployment}\n" in registered.stdout

    entries = [f"local_arith:model={d}" for d in DEPLOYMENTS.values()]
    output = root / "helm"
    before = server.requests
    helm_run(entries, tmp_path=root, local_path=prod_env, output=output, plugins=[str(LOCAL_PLUGIN)], suite=SUITE)
    first = server.requests - before
    before = server.requests
    rerun = helm_run(entries, tmp_path=root, local_path=prod_env, output=output, plugins=[str(LOCAL_PLUGIN)],
                     suite=SUITE)
    second = server.requests - before
    # helm-summarize loads no plugin: the scenario class must be importable for --auto-generate-schema
    # to find the scenario's metadata, or its leaderboard table is silently left out.
    summary = run_tool(["helm-summarize", "--suite", SUITE, "-o", str(output), "--local-path", str(prod_env),
                        "--auto-generate-schema"], env=subprocess_env(root, pythonpath=[LOCAL_PLUGIN.parent]), cwd=root)
    assert "Error loading punkt" not in summary.stdout + summary.stderr  # NLTK_DATA keeps nltk offline
    return Leaderboard(root=root, agents_dir=root / "opt" / "agents", prod_env=prod_env, output=output,
                       agent_path=agent.path, first_run_requests=first, rerun_requests=second,
                       rerun_log=rerun.stdout + rerun.stderr)


def _run_path(board: Leaderboard, method: str) -> Path:
    return board.output / "runs" / SUITE / run_name("local_arith", DEPLOYMENTS[method])


def test_agent_written_where_the_deployment_looks(board: Leaderboard) -> None:
    assert board.agent_path == board.agents_dir / "local_arith" / "openai" / "hopt-fake-model" / \
        "LabeledFewShot.json"
    demos = json.loads(board.agent_path.read_text())
    assert "demos" in json.dumps(demos)


def test_each_method_scored_by_helm(board: Leaderboard) -> None:
    for method in DEPLOYMENTS:
        run = _run_path(board, method)
        assert stat_mean(run) == 1.0, method
        state = json.loads((run / "scenario_state.json").read_text())
        assert len(state["request_states"]) == 4  # the four test questions
        assert all(rs["result"]["success"] for rs in state["request_states"])
    # The agent answered through the DSPy program: its requests carry HELM's prompt, its answers a number.
    agent_state = json.loads((_run_path(board, "agent") / "scenario_state.json").read_text())
    assert {rs["result"]["completions"][0]["text"] for rs in agent_state["request_states"]} == {"12", "3", "20", "18"}


def test_every_method_reports_output_tokens(board: Leaderboard) -> None:
    """HELM's chat client gives no tokens without logprobs (0 output tokens); ours counts them."""
    for method in DEPLOYMENTS:
        assert stat_mean(_run_path(board, method), "num_output_tokens") > 0, method
    baseline = json.loads((_run_path(board, "baseline") / "scenario_state.json").read_text())
    for rs in baseline["request_states"]:
        [completion] = rs["result"]["completions"]
        assert "".join(t["text"] for t in completion["tokens"]) == completion["text"]
        assert all(t["logprob"] == 0 for t in completion["tokens"])


def test_helm_summarize_leaderboard_matches_stats(board: Leaderboard) -> None:
    suite_dir = board.output / "runs" / SUITE
    runs = {Path(r["run_path"]).name: r for r in json.loads((suite_dir / "runs.json").read_text())}
    assert set(runs) == {run_name("local_arith", d) for d in DEPLOYMENTS.values()}
    [table] = [t for t in json.loads((suite_dir / "groups" / "local_arith.json").read_text())]
    headers = [h["value"] for h in table["header"]]
    assert headers[0] == "Model" and "EM" in headers
    column = headers.index("EM")
    scores = {}
    for row in table["rows"]:
        [spec_name] = row[0]["run_spec_names"]
        scores[spec_name] = row[column]["value"]
    assert scores == {run_name("local_arith", d): stat_mean(_run_path(board, m)) for m, d in DEPLOYMENTS.items()}
    models = {row[0]["value"] for row in table["rows"]}
    assert f"{MODEL} (DSPy LabeledFewShot)" in models and f"{MODEL} (DSPy zero-shot CoT)" in models


def test_rerun_is_answered_from_helm_cache(board: Leaderboard) -> None:
    assert board.first_run_requests >= 8  # baseline 4 + CoT 4 + agent 4 (minus any DSPy-side reuse)
    assert board.rerun_requests == 0
    # HELM's own cache report: every cache lookup of the re-run was a hit.
    counts = re.findall(r"(\d+) queries, (\d+) computes", board.rerun_log)
    assert counts and all(computes == "0" for _, computes in counts), counts


def test_api_key_reaches_no_file(board: Leaderboard) -> None:
    sentinel = KEY_SENTINEL.encode()
    scanned = 0
    for directory, _, files in os.walk(board.root):
        for name in files:
            scanned += 1
            assert sentinel not in (Path(directory) / name).read_bytes(), Path(directory) / name
    assert scanned > 20
    assert KEY_ENV in (board.prod_env / "model_deployments.yaml").read_text()  # the variable's name only


def test_agents_dir_env_var_registers_the_deployments(board: Leaderboard, tmp_path: Path) -> None:
    """With HELM_OPTIMIZER_AGENTS_DIR set, importing the entry point registers the same deployments."""
    code = (
        "import helm_optimizer.plugin.helm_entry\n"
        "from helm.benchmark.model_deployment_registry import get_model_deployment\n"
        f"for name in {sorted(DEPLOYMENTS.values())!r}:\n"
        "    d = get_model_deployment(name)\n"
        "    print(name, d.client_spec.class_name, d.client_spec.args.get('agents_dir'))\n"
    )
    env = subprocess_env(tmp_path)
    env["HELM_OPTIMIZER_AGENTS_DIR"] = str(board.agents_dir)
    proc = run_tool(["python", "-c", code], env=env, cwd=tmp_path)
    agents_dir = board.agents_dir.resolve()
    assert proc.stdout.splitlines() == sorted([
        f"{MODEL} helm_optimizer.plugin.clients.OpenAICompatibleClient None",
        f"{DEPLOYMENTS['agent']} helm_optimizer.plugin.agent_client.AgentClient {agents_dir}",
        f"{DEPLOYMENTS['zs-cot']} helm_optimizer.plugin.agent_client.AgentClient None",
    ])
