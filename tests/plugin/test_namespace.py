"""Loading method 3: a ``helm/benchmark/run_specs/`` tree on PYTHONPATH (examples/namespace_plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.helpers import MODEL, NAMESPACE_PLUGIN, helm_run, run_name, stat_mean

pytestmark = pytest.mark.slow  # real helm-run subprocesses

ENTRY = f"hopt_namespace_example:model={MODEL}"

# helm-run exactly as HELM ships it, but with no entry-point plugins: what happens in an
# environment where helm-optimizer is not installed.
_HELM_RUN_WITHOUT_ENTRY_POINTS = (
    "import sys; import helm.benchmark.run as run; "
    "run.load_entry_point_plugins = lambda group='helm': []; "
    "sys.argv[0] = 'helm-run'; run.main()"
)


def test_helm_alone_does_not_discover_a_run_specs_tree_on_pythonpath(prod_env: Path, tmp_path: Path) -> None:
    """``helm.benchmark.run_specs`` is a regular package: a second directory of that name is ignored."""
    proc = helm_run([ENTRY], tmp_path=tmp_path, local_path=prod_env, pythonpath=[NAMESPACE_PLUGIN],
                    python_prefix=["python", "-c", _HELM_RUN_WITHOUT_ENTRY_POINTS], expect_ok=False)
    assert proc.returncode != 0
    assert "Unknown run spec name: hopt_namespace_example" in proc.stderr


def test_our_entry_point_extends_the_run_specs_namespace(prod_env: Path, tmp_path: Path) -> None:
    """With helm-optimizer installed, plain ``helm-run`` finds the tree on PYTHONPATH."""
    helm_run([ENTRY], tmp_path=tmp_path, local_path=prod_env, pythonpath=[NAMESPACE_PLUGIN])
    run = tmp_path / "out" / "runs" / "tutorial" / run_name("hopt_namespace_example")
    assert stat_mean(run) == 1.0
    assert "helm.benchmark.run_specs.hopt_namespace_example_run_specs.NamespaceArithScenario" in (
        run / "run_spec.json"
    ).read_text()


def test_namespace_tree_has_no_init_files() -> None:
    """An ``__init__.py`` anywhere in the tree would shadow HELM's own ``helm`` packages."""
    assert not list(NAMESPACE_PLUGIN.rglob("__init__.py"))
