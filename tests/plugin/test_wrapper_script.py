"""Loading method 4: ``python examples/wrapper_script/run.py`` with a sibling plugin module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.helpers import MODEL, WRAPPER_SCRIPT, run_name, run_tool, stat_mean, subprocess_env

pytestmark = pytest.mark.slow  # real helm-run subprocesses


def test_wrapper_script_loads_its_sibling_plugin_without_pythonpath(prod_env: Path, tmp_path: Path) -> None:
    env = subprocess_env(tmp_path)
    assert "PYTHONPATH" not in env
    proc = run_tool(["python", str(WRAPPER_SCRIPT), "--model", MODEL, "--suite", "wrapped",
                     "--max-eval-instances", "10", "--output-path", str(tmp_path / "out"),
                     "--local-path", str(prod_env)], env=env, cwd=tmp_path)
    run = tmp_path / "out" / "runs" / "wrapped" / run_name("wrapper_arith")
    assert proc.stdout.splitlines() == [f"{run.name}\t{run}\t1.000"]
    assert stat_mean(run) == 1.0
    assert (tmp_path / "out" / "runs" / "wrapped" / "eval_cache").is_dir()

