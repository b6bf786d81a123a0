"""Errors HELM hides or reports late, as one-line PluginErrors raised before any model call (in-process)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from helm_optimizer.errors import PluginError
from helm_optimizer.serving.fake import FakeOpenAIServer
from tests.plugin.helpers import MODEL, write_dist_info

_RUN_SPEC = '''
from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.metrics.metric import MetricSpec
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import ScenarioSpec


class SuchScenario:
    pass


@run_spec_function("{name}")
def build() -> RunSpec:
    return RunSpec(name="{name}", scenario_spec=ScenarioSpec(class_name="{scenario}"),
                   adapter_spec=AdapterSpec(method="generation"),
                   metric_specs=[MetricSpec(class_name="{metric}")])
'''
_BASIC_METRIC = "helm.benchmark.metrics.basic_metrics.BasicGenerationMetric"


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _plugin(directory: Path, module: str, run_spec: str, *, scenario: str | None = None,
            metric: str = _BASIC_METRIC) -> Path:
    path = directory / f"{module}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_RUN_SPEC.format(name=run_spec, scenario=scenario or f"{module}.SuchScenario", metric=metric))
    return path


def _run(plugins: list[str], entries: list[str], prod_env: Path, tmp_path: Path) -> None:
    from helm_optimizer import run_benchmark

    run_benchmark(entries, plugins=plugins, suite="errors", max_eval_instances=10, output_path=tmp_path / "out",
                  local_path=prod_env, num_threads=2)


# ---- a plugin that fails to import -----------------------------------------------------------------
def test_module_plugin_with_a_missing_dependency(server: FakeOpenAIServer, prod_env: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, helm_state: None) -> None:
    uid = _uid()
    (tmp_path / f"hopt_needs_dep_{uid}.py").write_text(f"import hopt_missing_dependency_{uid}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = server.requests
    with pytest.raises(PluginError) as info:
        _run([f"hopt_needs_dep_{uid}"], [f"anything:model={MODEL}"], prod_env, tmp_path)
    assert str(info.value) == (
        f"Plugin 'hopt_needs_dep_{uid}' failed to import: No module named 'hopt_missing_dependency_{uid}'; "
        "check the name, install its package or add its directory to PYTHONPATH."
    )
    assert server.requests == before
    assert not (tmp_path / "out" / "runs").exists()


def test_path_plugin_that_raises(prod_env: Path, tmp_path: Path, helm_state: None) -> None:
    plugin = tmp_path / f"hopt_raises_{_uid()}.py"
    plugin.write_text("x = 1\nraise RuntimeError('bad config\\nsecond line')\n")
    with pytest.raises(PluginError) as info:
        _run([str(plugin)], [f"anything:model={MODEL}"], prod_env, tmp_path)
    # ubelt wraps the error in a multi-line RuntimeError; the message is the cause, on one line.
    assert str(info.value) == f"Plugin '{plugin}' failed to import: RuntimeError: bad config"


def test_missing_plugin_file(tmp_path: Path) -> None:
    from helm_optimizer.helm.loading import import_plugins

    with pytest.raises(PluginError, match=r"is not a file; give a module name or the path of a \.py file"):
        import_plugins([str(tmp_path / "nope.py")])


def test_failing_entry_point_raises_in_our_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 helm_state: None) -> None:
    """HELM logs a warning and goes on (test_entry_points); prepare_helm / run_benchmark stop."""
    from helm_optimizer.helm.loading import load_entry_point_plugins, prepare_helm

    uid = _uid()
    site = tmp_path / "site"
    write_dist_info(site, f"hopt_broken_{uid}", {f"hopt_broken_{uid}": f"hopt_broken_module_{uid}"})
    (site / f"hopt_broken_module_{uid}.py").write_text("raise ImportError('libfoo.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(site))
    expected = (f"HELM plugin entry point 'hopt_broken_{uid}' -> 'hopt_broken_module_{uid}' failed to import: "
                "ImportError: libfoo.so: cannot open shared object")
    with pytest.raises(PluginError) as info:
        load_entry_point_plugins()
    assert str(info.value) == expected
    with pytest.raises(PluginError, match=re.escape(expected)):
        prepare_helm()


# ---- class names -----------------------------------------------------------------------------------
def test_unknown_scenario_class_is_named_before_any_request(server: FakeOpenAIServer, prod_env: Path,
                                                            tmp_path: Path, helm_state: None) -> None:
    uid = _uid()
    module = f"hopt_cls_{uid}"
    plugin = _plugin(tmp_path, module, f"hopt_cls_{uid}", scenario=f"{module}.SuchScenaro")
    before = server.requests
    with pytest.raises(PluginError) as info:
        _run([str(plugin)], [f"hopt_cls_{uid}:model={MODEL}"], prod_env, tmp_path)
    assert str(info.value).startswith(
        f"Scenario of run spec 'hopt_cls_{uid}:model=openai_hopt-fake-model' class '{module}.SuchScenaro': "
        f"module '{module}' has no attribute 'SuchScenaro'. Did you mean 'SuchScenario'"
    )
    assert server.requests == before
    assert not (tmp_path / "out" / "runs" / "errors").exists()


def test_metric_class_in_a_missing_module_is_named(prod_env: Path, tmp_path: Path, helm_state: None) -> None:
    uid = _uid()
    plugin = _plugin(tmp_path, f"hopt_metric_{uid}", f"hopt_metric_{uid}", metric="hopt_no_such_module.Metric")
    with pytest.raises(PluginError) as info:
        _run([str(plugin)], [f"hopt_metric_{uid}:model={MODEL}"], prod_env, tmp_path)
    assert str(info.value) == (
        f"Metric of run spec 'hopt_metric_{uid}:model=openai_hopt-fake-model' class "
        "'hopt_no_such_module.Metric': module 'hopt_no_such_module' could not be imported "
        "(ModuleNotFoundError: No module named 'hopt_no_such_module'); install it or add its directory to PYTHONPATH."
    )


# ---- run spec names registered twice --------------------------------------------------------------
def test_two_plugins_registering_one_run_spec_name(tmp_path: Path, helm_state: None) -> None:
    from helm.benchmark.run import import_user_plugins

    from helm_optimizer.helm.loading import import_plugins

    uid = _uid()
    first = _plugin(tmp_path / "a", f"hopt_dup_first_{uid}", f"hopt_dup_{uid}")
    second = _plugin(tmp_path / "b", f"hopt_dup_second_{uid}", f"hopt_dup_{uid}")
    with pytest.raises(PluginError) as info:
        import_plugins([str(first), str(second)])
    assert str(info.value) == (
        f"Run spec 'hopt_dup_{uid}' is registered twice: by module hopt_dup_first_{uid} (Plugin '{first}') and "
        f"by Plugin '{second}'; rename one of the two run spec functions."
    )

    # HELM's own loader: the ValueError (inside ubelt's RuntimeError) does not name the first plugin.
    third = _plugin(tmp_path / "c", f"hopt_dup_third_{uid}", f"hopt_dup_{uid}")
    with pytest.raises(Exception, match=f"A run spec function with name hopt_dup_{uid} already exists") as helm:
        import_user_plugins([str(third)])
    assert f"hopt_dup_first_{uid}" not in str(helm.value)


def test_plugin_reusing_a_helm_run_spec_name(tmp_path: Path, helm_state: None) -> None:
    from helm_optimizer.helm.loading import import_plugins

    plugin = _plugin(tmp_path, f"hopt_mmlu_{_uid()}", "mmlu")
    with pytest.raises(PluginError, match=r"^Run spec 'mmlu' is registered twice: by module "
                                          r"helm\.benchmark\.run_specs\.lite_run_specs and by Plugin "):
        import_plugins([str(plugin)])


def test_two_path_plugins_with_one_file_name(tmp_path: Path, helm_state: None) -> None:
    """ubelt imports by module name, so HELM would silently reuse the first file for the second."""
    from helm_optimizer.helm.loading import import_plugins

    uid = _uid()
    first = _plugin(tmp_path / "a", f"hopt_same_{uid}", f"hopt_same_a_{uid}")
    second = _plugin(tmp_path / "b", f"hopt_same_{uid}", f"hopt_same_b_{uid}")
    with pytest.raises(PluginError) as info:
        import_plugins([str(first), str(second)])
    assert str(info.value) == (
        f"Plugin '{second}' was not imported: its module name 'hopt_same_{uid}' is already taken by {first}; "
        "rename the file."
    )


def test_broken_module_in_the_run_specs_namespace_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           helm_state: None) -> None:
    import helm.benchmark.run_specs as run_specs_pkg

    from helm_optimizer.helm.loading import discover_run_specs, extend_run_specs_namespace

    uid = _uid()
    tree = tmp_path / "tree" / "helm" / "benchmark" / "run_specs"
    tree.mkdir(parents=True)
    (tree / f"hopt_broken_ns_{uid}.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "tree"))
    monkeypatch.setattr(run_specs_pkg, "__path__", list(run_specs_pkg.__path__))  # restored afterwards
    assert extend_run_specs_namespace() == [str(tree)]
    with pytest.raises(PluginError) as info:
        discover_run_specs()
    assert str(info.value) == (
        f"Run spec module (from {tree}) 'helm.benchmark.run_specs.hopt_broken_ns_{uid}' failed to import: "
        "ZeroDivisionError: division by zero"
    )
