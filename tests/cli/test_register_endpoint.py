"""`helm-optimizer register AGENTS_DIR --model M --api-base URL --api-key-env VAR`: no YAML edits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from helm_optimizer.cli.main import main
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests._logging import keep_root_logging  # noqa: F401  (in-process CLI runs reconfigure logging)
from tests.conftest import REPO
from tests.plugin.helpers import LOCAL_PLUGIN

MODEL = "openai/hopt-fake-model"
KEY_ENV = "HOPT_REGISTER_TEST_KEY"
KEY = "sk-hopt-register-sentinel-91c2"
REFERENCE_AGENT = REPO / "tests" / "fixtures" / "agents" / "reference_dspy_3.0.3_cot.json"


def _published(root: Path) -> Path:
    """Agents as the reference tool publishes them: agents/<scenario>/<model>/<optimizer>.json, no metadata."""
    agents = root / "agents"
    for model in (MODEL, "openai/other-model"):
        target = agents / "local_arith" / model / "LabeledFewShot.json"
        target.parent.mkdir(parents=True)
        shutil.copy(REFERENCE_AGENT, target)
    return agents


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_register_points_published_agents_at_the_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from helm_optimizer.helm.runner import run_benchmark

    agents = _published(tmp_path)
    prod_env = tmp_path / "prod_env"
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAIServer() as server:
        code = _run(["register", str(agents), "--local-path", str(prod_env), "--model", MODEL,
                     "--api-base", server.api_base, "--api-key-env", KEY_ENV])
        out = capsys.readouterr().out
        assert code == 0, out
        deployments = yaml.safe_load((prod_env / "model_deployments.yaml").read_text())["model_deployments"]
        by_name = {d["name"]: d for d in deployments}
        # only the chosen model: baseline at the endpoint, zero-shot programs and the published agent
        from helm_optimizer.naming import agent_deployment_name

        per_file = agent_deployment_name(MODEL, "LabeledFewShot", "local_arith")
        assert set(by_name) == {MODEL, f"{MODEL}-dspy-zs-predict", f"{MODEL}-dspy-zs-cot",
                                f"{MODEL}-dspy-fs-labeledfewshot", per_file}
        assert by_name[per_file]["model_name"] == f"{MODEL}-dspy-fs-labeledfewshot"
        assert f"model_deployment={per_file}" in out
        assert by_name[MODEL]["client_spec"]["args"]["base_url"] == server.api_base
        assert by_name[MODEL]["client_spec"]["args"]["api_key_env"] == KEY_ENV
        agent_lm = by_name[f"{MODEL}-dspy-fs-labeledfewshot"]["client_spec"]["args"]["lm"]
        assert (agent_lm["model"], agent_lm["api_base"], agent_lm["api_key_env"]) == (MODEL, server.api_base,
                                                                                      KEY_ENV)
        for path in prod_env.iterdir():
            assert KEY not in path.read_text()
        assert f"model={MODEL}-dspy-fs-labeledfewshot" in out

        # The written files are all HELM needs: the published agent answers through them.
        before = server.completions
        result = run_benchmark([f"local_arith:model={MODEL}-dspy-fs-labeledfewshot"], plugins=[str(LOCAL_PLUGIN)],
                               suite="register", output_path=tmp_path / "helm", local_path=prod_env,
                               max_eval_instances=3, num_threads=1)
        assert server.completions - before >= 3
        [run] = result.runs
        states = json.loads((run.path / "scenario_state.json").read_text())["request_states"]
        assert len(states) == 3 and all(rs["result"]["success"] for rs in states)
        assert run.stat("exact_match") is not None


def test_register_unknown_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agents = _published(tmp_path)
    code = _run(["register", str(agents), "--local-path", str(tmp_path / "p"), "--model", "openai/hopt-fake-modle",
                 "--api-base", "http://127.0.0.1:9/v1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "Did you mean 'openai/hopt-fake-model'" in err and "openai/other-model" in err
    assert not (tmp_path / "p").exists()


def test_endpoint_options_need_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agents = _published(tmp_path)
    code = _run(["register", str(agents), "--api-base", "http://127.0.0.1:9/v1"])
    assert code == 2
    assert "need --model" in capsys.readouterr().err
    assert os.environ.get(KEY_ENV) is None
