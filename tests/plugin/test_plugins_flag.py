"""Loading method 2: ``--plugins`` with a module name or a ``.py`` path (HELM's loader and ours)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.plugin.helpers import LOCAL_PLUGIN, MODEL, MY_PLUGIN_SRC, helm_run, run_name, stat_mean

_LAZY_PLUGIN = '''
from helm.benchmark.run_spec import RunSpec, run_spec_function


@run_spec_function("{name}")
def build() -> RunSpec:
    import {sibling}  # imported when HELM builds the run spec, not when it imports this file

    return {sibling}.run_spec("{name}")
'''
_TYPO_PLUGIN = '''
from helm.benchmark.adaptation.common_adapter_specs import get_generation_adapter_spec
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import ScenarioSpec


@run_spec_function("hopt_typo")
def build() -> RunSpec:
    return RunSpec(name="hopt_typo", scenario_spec=ScenarioSpec(class_name="arith_data.ArithScenaro"),
                   adapter_spec=get_generation_adapter_spec(max_train_instances=0), metric_specs=[])
'''
_LAZY_SIBLING = '''
from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.run_spec import RunSpec
from helm.benchmark.scenarios.scenario import ScenarioSpec


def run_spec(name: str) -> RunSpec:
    return RunSpec(name=name, scenario_spec=ScenarioSpec(class_name=__name__ + ".Nothing"),
                   adapter_spec=AdapterSpec(method="generation"), metric_specs=[])
'''


@pytest.mark.slow
def test_plugins_flag_with_a_module_name_on_pythonpath(prod_env: Path, tmp_path: Path) -> None:
    helm_run([f"times_tables:model={MODEL}"], tmp_path=tmp_path, local_path=prod_env,
             plugins=["example_times_tables.run_specs"], pythonpath=[MY_PLUGIN_SRC])
    assert stat_mean(tmp_path / "out" / "runs" / "tutorial" / run_name("times_tables"), "number_match") == 1.0


@pytest.mark.slow
def test_plugins_flag_with_paths_sibling_import_works_and_a_class_typo_fails_mid_run(
    server: FakeOpenAIServer, prod_env: Path, tmp_path: Path
) -> None:
    """``helm-run --plugins examples/local_plugin/local_plugin.py typo.py`` with no PYTHONPATH.

    * local_plugin.py's top-level ``from arith_data import ...`` works, and so does
      ``class_name='arith_data.ArithScenario'`` when the run reaches it;
    * a ``class_name`` typo in the second run spec is found only when HELM reaches that run, after the
      first run has called the model; HELM logs it and exits 1 at the end (run_benchmark refuses
      before any request: test_errors.py::test_unknown_scenario_class_is_named_before_any_request).
    """
    typo = tmp_path / "typo_plugin.py"
    typo.write_text(_TYPO_PLUGIN)
    before = server.requests
    proc = helm_run([f"local_arith:model={MODEL}", f"hopt_typo:model={MODEL}"], tmp_path=tmp_path,
                    local_path=prod_env, plugins=[str(LOCAL_PLUGIN), str(typo)], expect_ok=False)
    run = tmp_path / "out" / "runs" / "tutorial" / run_name("local_arith")
    assert stat_mean(run) == 1.0
    assert '"class_name": "arith_data.ArithScenario"' in (run / "run_spec.json").read_text()
    assert server.requests - before == 4  # the first run's four test questions
    assert proc.returncode == 1
    assert "AttributeError: module 'arith_data' has no attribute 'ArithScenaro'" in proc.stdout + proc.stderr
    assert f'RunnerError: Failed runs: ["{run_name("hopt_typo")}"]' in proc.stderr


def test_helm_loader_forgets_the_plugin_directory_ours_keeps_it(tmp_path: Path, helm_state: None) -> None:
    """HELM (ubelt) puts a path plugin's directory on sys.path only while the file executes: a sibling
    imported later (here inside the run spec function) is not found. helm-optimizer's loader keeps it."""
    from helm.benchmark.run import import_user_plugins
    from helm.benchmark.run_spec import get_run_spec_function

    from helm_optimizer.helm.loading import import_plugins

    uid = uuid.uuid4().hex[:8]
    name, sibling = f"hopt_lazy_{uid}", f"hopt_lazy_sibling_{uid}"
    plugin = tmp_path / f"hopt_lazy_plugin_{uid}.py"
    plugin.write_text(_LAZY_PLUGIN.format(name=name, sibling=sibling))
    (tmp_path / f"{sibling}.py").write_text(_LAZY_SIBLING)

    import_user_plugins([str(plugin)])  # what helm-run --plugins does
    assert str(tmp_path) not in sys.path
    with pytest.raises(ModuleNotFoundError, match=sibling):
        get_run_spec_function(name)()  # type: ignore[misc]

    import_plugins([str(plugin)])  # what run_benchmark(plugins=[...]) and helm-optimizer --plugins do
    assert str(tmp_path.resolve()) in sys.path
    assert get_run_spec_function(name)().name == name  # type: ignore[misc]


def test_run_benchmark_with_a_path_plugin(server: FakeOpenAIServer, prod_env: Path, tmp_path: Path) -> None:
    from helm_optimizer import run_benchmark

    result = run_benchmark([f"local_arith:model={MODEL}"], plugins=[str(LOCAL_PLUGIN)], suite="tutorial",
                           max_eval_instances=10, output_path=tmp_path / "out", local_path=prod_env, num_threads=2)
    [run] = result.runs
    assert run.name == run_name("local_arith")
    assert run.path == tmp_path / "out" / "runs" / "tutorial" / run.name
    stat = run.stat("exact_match")
    assert stat is not None and stat["mean"] == 1.0 and stat["count"] == 1
    assert str(LOCAL_PLUGIN.parent) in sys.path  # the sibling stays importable for later lookups
