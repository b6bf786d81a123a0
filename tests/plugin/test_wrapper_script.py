"""Loading method 4: ``python examples/wrapper_script/run.py`` with a sibling plugin module."""

from __future__ import annotations

from pathlib import Path

from tests.plugin.helpers import MODEL, WRAPPER_SCRIPT, run_name, run_tool, stat_mean, subprocess_env


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


def test_wrapper_script_reports_a_missing_plugin_in_one_line(prod_env: Path, tmp_path: Path) -> None:
    script = tmp_path / "alone" / "run.py"  # the script without its sibling module
    script.parent.mkdir()
    script.write_text(WRAPPER_SCRIPT.read_text())
    proc = run_tool(["python", str(script), "--model", MODEL, "--output-path", str(tmp_path / "out"),
                     "--local-path", str(prod_env)], env=subprocess_env(tmp_path), cwd=tmp_path, expect_ok=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: Plugin 'wrapper_plugin' failed to import: No module named 'wrapper_plugin'; check the name, "
        "install its package or add its directory to PYTHONPATH."
    )
    assert not (tmp_path / "out" / "runs").exists()
