"""HELM's own guide example ("Importing Custom Modules"), built at test time from the guide itself.

The example package is not kept in this repository: the test reads HELM's guide, writes the files
its steps describe (the plugin module, the entry point in ``pyproject.toml``) into a temporary
project, installs it as the guide says and runs the guide's ``helm-run`` command against the fake
server. It is skipped where the guide is not on the machine (``HELM_CUSTOM_MODULES_GUIDE`` names it,
else ``<repo>/../shared/seeds/helm-custom-modules-guide.txt``).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from tests.plugin.helpers import MODEL, REPO, helm_run, run_name, run_tool, stat_mean, subprocess_env

pytestmark = pytest.mark.slow  # a pip install and a real helm-run

_GUIDE_NAME = "helm-custom-modules-guide.txt"


def _guide() -> str:
    candidates = [os.environ.get("HELM_CUSTOM_MODULES_GUIDE", ""), str(REPO.parent / "shared" / "seeds" / _GUIDE_NAME)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_text(encoding="utf-8")
    pytest.skip(f"HELM's custom-modules guide is not on this machine (set HELM_CUSTOM_MODULES_GUIDE to {_GUIDE_NAME})")


def _block_after(text: str, marker: str, language: str) -> str:
    """The first fenced ``language`` block after ``marker`` in the guide."""
    start = text.index(marker)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no {language} block after {marker!r} in the guide"
    return match.group(1)


def test_the_guides_example_plugin_runs_as_the_guide_describes(prod_env: Path, tmp_path: Path) -> None:
    guide = _guide()
    module_path = "src/my_example_helm_module/my_submodule_plugin_code.py"
    code = _block_after(guide, f"Write the following into `{module_path}`", "python")
    entry_points = _block_after(guide, "Step 3", "toml")
    command = shlex.split(_block_after(guide, "Step 4", "bash").strip())
    entry = command[command.index("--run-entries") + 1]

    # Step 1 (what `uv init --package my_example_helm_module` lays out) and steps 2-3 of the guide.
    project = tmp_path / "my_example_helm_module"
    (project / module_path).parent.mkdir(parents=True)
    (project / module_path).write_text(code, encoding="utf-8")
    (project / "src" / "my_example_helm_module" / "__init__.py").write_text("", encoding="utf-8")
    (project / "README.md").write_text("", encoding="utf-8")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "my_example_helm_module"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n\n'
        f'[tool.setuptools.packages.find]\nwhere = ["src"]\n\n{entry_points}', encoding="utf-8")
    site = tmp_path / "site"
    run_tool(["python", "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
              "--target", str(site), str(project)], env=subprocess_env(tmp_path), cwd=tmp_path)

    # Step 4: the guide's helm-run, with the fake server's model instead of the guide's.
    name, _, _ = entry.partition(":")
    assert name == "my_custom_run_spec"
    proc = helm_run([f"{name}:model={MODEL}"], tmp_path=tmp_path, local_path=prod_env, pythonpath=[site])
    assert proc.returncode == 0
    assert stat_mean(tmp_path / "out" / "runs" / "tutorial" / run_name(name)) == 1.0  # the guide's exact_match
