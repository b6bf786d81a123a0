"""The package's import structure: the layers contract in pyproject.toml, and no import circle at all."""

from __future__ import annotations

import graphlib
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_layers_contract_is_kept() -> None:
    """``lint-imports`` reads [tool.importlinter] in pyproject.toml: no layer imports one above it."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed; install the test extra: pip install -e '.[test]'")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


def _module_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("helm_optimizer", cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_import_circle_between_modules() -> None:
    """Every import counts, function-local ones included: a circle hidden inside a function is still one."""
    try:
        graphlib.TopologicalSorter(_module_graph()).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_the_check_sees_function_local_imports() -> None:
    """The graph the circle check uses includes imports made inside functions."""
    modules = _module_graph()
    assert "helm_optimizer.helm.task" in modules["helm_optimizer.scenarios.dataset"]  # imported inside a function
