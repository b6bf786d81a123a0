"""A third-party HELM plugin whose run entry takes a path goes optimize -> evaluate -> report row.

The plugin is an installed distribution (a package plus a ``*.dist-info`` declaring a ``helm``
entry point) on ``PYTHONPATH``; helm-optimizer finds it with no ``--plugins`` flag. Its run spec
reads its instances from ``instances_path``, a JSON file under a directory whose name holds
``/ : = %``, spaces and unicode; another argument's value holds ``=``. Every command runs as a user
runs it, in a fresh process: ``optimize``, ``evaluate`` and ``report`` one after the other, then the
same pipeline as a sweep with ``--executor ray``. Both give the same report rows; the evaluation
of the agent reads exactly the file the optimization wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_optimizer.naming import agent_deployment_name, agent_path, scenario_key
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests._fresh import fresh_env, run_script
from tests.plugin.helpers import write_dist_info

pytestmark = pytest.mark.slow  # fresh helm-optimizer processes (and a local Ray instance)

MODEL = "openai/paths-fake"
OPTIMIZER = "LabeledFewShot"
PLUGIN = '''
"""A HELM plugin whose run spec reads its instances from a JSON file named by an argument."""

import json

from helm.benchmark.adaptation.common_adapter_specs import get_generation_adapter_spec
from helm.benchmark.metrics.common_metric_specs import get_exact_match_metric_specs
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import (
    CORRECT_TAG, Input, Instance, Output, Reference, Scenario, ScenarioSpec)


class PathQAScenario(Scenario):
    name = "hopt_path_qa"
    description = "Questions read from the JSON file instances_path."
    tags = ["qa"]

    def __init__(self, instances_path: str, tag: str = "") -> None:
        super().__init__()
        self.instances_path = instances_path
        self.tag = tag

    def get_instances(self, output_path: str) -> list:
        with open(self.instances_path, encoding="utf-8") as handle:
            rows = json.load(handle)
        return [Instance(id=row["id"], input=Input(text="Q: " + row["question"]),
                         references=[Reference(output=Output(text=row["answer"]), tags=[CORRECT_TAG])],
                         split=row["split"]) for row in rows]


@run_spec_function("hopt_path_qa")
def hopt_path_qa_spec(instances_path: str, tag: str = "") -> RunSpec:
    return RunSpec(
        name=f"hopt_path_qa:instances_path={instances_path},tag={tag}",
        scenario_spec=ScenarioSpec(class_name="hopt_path_plugin.PathQAScenario",
                                   args={"instances_path": instances_path, "tag": tag}),
        adapter_spec=get_generation_adapter_spec(instructions="Answer with a number only.", input_noun=None,
                                                 output_noun="Answer", max_train_instances=0, max_tokens=10),
        metric_specs=get_exact_match_metric_specs(),
        groups=["hopt_path_qa"],
    )
'''


def _install_plugin(site: Path) -> None:
    package = site / "hopt_path_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    write_dist_info(site, "hopt_path_plugin", {"hopt_path_qa": "hopt_path_plugin"})


def _write_instances(root: Path) -> Path:
    """8 training and 6 test questions in ``<root>/plugin data/v=1:a%b données/qa file.json``."""
    rows = []
    for split, count in (("train", 8), ("test", 6)):
        for i in range(count):
            a, b = 3 + i, 4 + 2 * i if split == "test" else 1 + i
            rows.append({"id": f"{split}-{i}", "question": f"{a}+{b}=?", "answer": str(a + b), "split": split})
    path = root / "plugin data" / "v=1:a%b données" / "qa file.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = json.loads((output_dir / "report" / "report.json").read_text())["rows"]
    return sorted(({k: r[k] for k in ("scenario", "model", "method", "n", "mean", "warnings")} for r in rows),
                  key=lambda r: r["method"])


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("paths")
    site = root / "site"
    _install_plugin(site)
    instances = _write_instances(root)
    entry = f"hopt_path_qa:instances_path={instances},tag=v=2 b"
    with FakeOpenAIServer(accuracy=0.5, demo_accuracy=0.8, seed=7) as server:
        yield {"root": root, "entry": entry, "server": server, "instances": instances,
               "env": fresh_env(root / "home", pythonpath=[site])}


@pytest.fixture(scope="module")
def local_run(setting: Any) -> Path:
    """``optimize``, ``evaluate`` and ``report``, each in a fresh process."""
    root, entry, server, env = setting["root"], setting["entry"], setting["server"], setting["env"]
    out = root / "local"
    common = ["--scenario", entry, "--model", MODEL, "--api-base", server.api_base, "--output-dir", str(out)]
    run_script("helm-optimizer", ["optimize", *common, "--optimizer", OPTIMIZER, "--max-labeled-demos", "2",
                                  "--num-threads", "4"], env=env, cwd=root)
    run_script("helm-optimizer", ["evaluate", *common, "--methods", f"baseline,{OPTIMIZER}", "--suite", "paths",
                                  "--num-threads", "4"], env=env, cwd=root)
    run_script("helm-optimizer", ["report", str(out)], env=env, cwd=root)
    return out


def test_optimize_evaluate_report_with_a_path_argument(setting: Any, local_run: Path) -> None:
    entry, out = setting["entry"], local_run
    key = scenario_key(entry)
    agent = agent_path(out / "agents", key, MODEL, OPTIMIZER)
    assert agent.is_file(), sorted(p.relative_to(out).as_posix() for p in (out / "agents").rglob("*.json"))
    assert [p for p in (out / "agents").iterdir()] == [out / "agents" / key]  # one scenario directory
    records = {json.loads(p.read_text())["method"]: json.loads(p.read_text())
               for p in (out / "evaluations").rglob("*.json")}
    assert set(records) == {"baseline", OPTIMIZER}
    record = records[OPTIMIZER]
    assert record["run_entry"] == entry and record["scenario"] == key
    assert record["deployment"] == agent_deployment_name(MODEL, OPTIMIZER, key)
    assert record["optimization"] is not None  # the evaluation read the optimization's agent metadata
    run_spec = json.loads((out / record["run_dir"] / "run_spec.json").read_text())
    assert run_spec["scenario_spec"]["args"]["instances_path"] == str(setting["instances"])
    assert run_spec["scenario_spec"]["args"]["tag"] == "v=2 b"
    assert run_spec["adapter_spec"]["model_deployment"] == record["deployment"]
    rows = _rows(out)
    assert [(r["method"], r["n"], r["warnings"]) for r in rows] == [(OPTIMIZER, 6, ""), ("baseline", 6, "")]
    assert all(r["scenario"] == key and r["model"] == MODEL for r in rows)


def test_the_same_with_the_ray_executor(setting: Any, local_run: Path) -> None:
    pytest.importorskip("ray")
    root, entry, server, env = setting["root"], setting["entry"], setting["server"], setting["env"]
    config = {"output_dir": str(root / "ray"), "suite": "paths-ray", "scenarios": [entry], "optimizers": [OPTIMIZER],
              "models": [{"model": MODEL, "api_base": server.api_base}], "methods": ["baseline"],
              "max_labeled_demos": 2, "num_threads": 4}
    config_path = root / "ray.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    run_script("helm-optimizer", ["sweep", str(config_path), "--executor", "ray", "--workers", "2"],
               env=env, cwd=root, timeout=420)
    assert _rows(root / "ray") == _rows(local_run)
    assert (root / "ray" / "helm" / "benchmark_output" / "runs" / "paths-ray" / "groups").is_dir()
