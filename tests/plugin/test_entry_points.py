"""Loading method 1: the ``helm`` entry-point group, through the real ``helm-run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.helpers import (
    EXAMPLES,
    FIXTURE_DATA,
    MODEL,
    copy_tree,
    helm_run,
    run_name,
    run_tool,
    stat_mean,
    subprocess_env,
    write_dist_info,
)

pytestmark = pytest.mark.slow  # real helm-run subprocesses


def test_our_entry_point_registers_run_specs_without_plugins_flag(prod_env: Path, tmp_path: Path) -> None:
    """helm-optimizer's own entry point: ``hopt_medbullets`` runs with no --plugins and no PYTHONPATH."""
    helm_run([f"hopt_medbullets:data_dir={FIXTURE_DATA},model={MODEL}"], tmp_path=tmp_path, local_path=prod_env)
    run = tmp_path / "out" / "runs" / "tutorial" / run_name("hopt_medbullets")
    assert 0.0 <= stat_mean(run) <= 1.0
    assert (run / "scenario_state.json").is_file()


def test_entry_point_of_installed_example_package_and_failing_entry_point_only_warns(
    prod_env: Path, tmp_path: Path
) -> None:
    """``examples/my_plugin`` installed with pip (into a --target dir on PYTHONPATH) is loaded by its
    entry point; a second distribution whose entry point fails to import only makes HELM warn."""
    source = copy_tree(EXAMPLES / "my_plugin", tmp_path / "my_plugin")  # pip build leaves files behind
    site = tmp_path / "site"
    run_tool(["python", "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
              "--target", str(site), str(source)], env=subprocess_env(tmp_path), cwd=tmp_path)
    entry_points = (next(site.glob("example_times_tables-*.dist-info")) / "entry_points.txt").read_text()
    assert "example_times_tables = example_times_tables.run_specs" in entry_points
    write_dist_info(site, "hopt_broken_plugin", {"hopt_broken": "hopt_broken_plugin_module"})
    (site / "hopt_broken_plugin_module.py").write_text("raise RuntimeError('boom at import')\n")

    proc = helm_run([f"times_tables:model={MODEL}"], tmp_path=tmp_path, local_path=prod_env,
                    pythonpath=[site])
    assert proc.returncode == 0
    assert stat_mean(tmp_path / "out" / "runs" / "tutorial" / run_name("times_tables"), "number_match") == 1.0
    log = proc.stdout + proc.stderr
    assert "Failed to load plugin entry point: hopt_broken" in log  # HELM: a warning, and the run goes on
    assert "boom at import" in log
