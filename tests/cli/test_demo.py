"""README command 1, ``helm-optimizer demo``, run twice in a row as a user runs it.

Each run is a fresh ``helm-optimizer demo`` process with the bundled demo config and data (optimize,
HELM evaluation of every method, ``helm-summarize``, report), no ``HELM_OPTIMIZER_*`` variable and
its own ``HOME``. The embedded model's server is stood in for by the fake server, advertised in
``~/.cache/helm-optimizer/servers/`` the way ``helm-optimizer serve`` advertises a real one, so the
demo's own model path (``local/smollm2``) is used unchanged and each LM call is counted. The second
run finds every cell finished: exit 0, and not one LM call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from helm_optimizer._io import write_json_atomic
from helm_optimizer.serving.fake import FakeOpenAIServer, FakeServerConfig
from tests._fresh import SRC, fresh_env, run_script

pytestmark = pytest.mark.slow  # two demo processes

DEMO_CONFIG = SRC / "helm_optimizer" / "configs" / "demo.yaml"


def test_demo_twice_second_run_is_instant_and_makes_no_lm_call(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from helm_optimizer.serving.embedded import state_path
    from helm_optimizer.serving.models import get_embedded_model

    home = tmp_path / "home"
    monkeypatch.delenv("HELM_OPTIMIZER_CACHE_DIR")
    monkeypatch.setenv("HOME", str(home))  # where a fresh process looks for advertised servers
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    env = fresh_env(home, extra={"COLUMNS": "400"})  # one line per path in the console output
    out = tmp_path / "demo-output"
    with FakeOpenAIServer(FakeServerConfig(model="smollm2", accuracy=0.4, demo_accuracy=0.6, seed=2)) as server:
        write_json_atomic(state_path(get_embedded_model("local/smollm2")),
                          {"model": "local/smollm2", "pid": os.getpid(), "port": server.port, "parallel": 4})
        first = run_script("helm-optimizer", ["demo", "--output-dir", str(out)], env=env, cwd=tmp_path, timeout=500)
        calls = server.completions
        assert calls > 0, "the demo did not reach the advertised model server"
        second = run_script("helm-optimizer", ["demo", "--output-dir", str(out)], env=env, cwd=tmp_path,
                            timeout=300)
        assert server.completions == calls, f"the second demo made {server.completions - calls} LM call(s)"
    for run in (first, second):
        assert f"Report: {out / 'report' / 'report.html'}" in " ".join(run.stdout.split())

    records = [json.loads(p.read_text()) for p in (out / "evaluations").rglob("*.json")]
    methods = list(dict.fromkeys([*demo["methods"], *demo["optimizers"]]))
    assert sorted(r["method"] for r in records) == sorted(methods)
    assert {r["model"] for r in records} == {"local/smollm2"}
    assert all(r["count"] == demo["eval_limit"] for r in records)
    baseline = next(r for r in records if r["method"] == "baseline")
    assert baseline["completion_tokens"] > 0  # HELM counted the embedded model's answers
    rows = json.loads((out / "report" / "report.json").read_text())["rows"]
    assert [r["method"] for r in rows] == methods  # the report's order: baseline, zero-shot, optimizers
    groups = out / "helm" / "benchmark_output" / "runs" / demo["suite"] / "groups"
    assert any(groups.glob("*.json")), "helm-summarize wrote no leaderboard"
