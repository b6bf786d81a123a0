"""Helpers of the HELM plugin tests: paths, the subprocess environment, running HELM's commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MY_PLUGIN_SRC = EXAMPLES / "my_plugin" / "src"
LOCAL_PLUGIN = EXAMPLES / "local_plugin" / "local_plugin.py"
NAMESPACE_PLUGIN = EXAMPLES / "namespace_plugin"
WRAPPER_SCRIPT = EXAMPLES / "wrapper_script" / "run.py"
FIXTURE_DATA = REPO / "tests" / "fixtures" / "medical"
NLTK_STUB = REPO / "src" / "helm_optimizer" / "data" / "nltk"
BIN = Path(sys.executable).parent

MODEL = "openai/hopt-fake-model"  # litellm (DSPy) needs a provider prefix
KEY_ENV = "HOPT_PLUGIN_TESTS_KEY"
KEY_SENTINEL = "sk-hopt-sentinel-3f9c1e7a2b"


def lm_dict(api_base: str) -> dict[str, Any]:
    return {"model": MODEL, "api_base": api_base, "api_key_env": KEY_ENV}


def subprocess_env(tmp_path: Path, *, pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    """The environment of a child process: offline, its own caches, the key sentinel, no stray PYTHONPATH."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("HELM_OPTIMIZER_AGENTS_DIR", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env["HELM_OPTIMIZER_CACHE_DIR"] = str(tmp_path / "hopt-cache")
    env["NLTK_DATA"] = str(NLTK_STUB)  # helm-summarize loads no plugin; keeps nltk.download off the network
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "true"
    env["HF_HUB_OFFLINE"] = "1"
    env[KEY_ENV] = KEY_SENTINEL
    return env


def run_tool(args: Sequence[str], *, env: dict[str, str], cwd: Path, expect_ok: bool = True,
             timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``python`` or a console script of this venv (``helm-run``, ``helm-summarize``...)."""
    exe = sys.executable if args[0] == "python" else str(BIN / args[0])
    proc = subprocess.run([exe, *args[1:]], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if expect_ok and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise AssertionError(f"{' '.join(args[:3])}... exited {proc.returncode}:\n{tail}")
    return proc


def helm_run(entries: Sequence[str], *, tmp_path: Path, local_path: Path, output: Path | None = None,
             plugins: Sequence[str] = (), pythonpath: Sequence[Path] = (), expect_ok: bool = True,
             suite: str = "tutorial", python_prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``helm-run`` with the tests' usual flags (or ``python_prefix`` + the same flags)."""
    args = [*(python_prefix or ["helm-run"]), "--run-entries", *entries, "--suite", suite,
            "--max-eval-instances", "10", "--local-path", str(local_path), "-o", str(output or tmp_path / "out"),
            "--num-threads", "2"]
    if plugins:
        args += ["--plugins", *plugins]
    return run_tool(args, env=subprocess_env(tmp_path, pythonpath=pythonpath), cwd=tmp_path, expect_ok=expect_ok)


def run_name(entry_name: str, model: str = MODEL) -> str:
    """HELM's run directory name for ``entry_name:model=model``."""
    return f"{entry_name}:model={model.replace('/', '_')}"


def stat_mean(run_path: Path, name: str = "exact_match", split: str = "test") -> float:
    """The mean of ``name`` on ``split`` (no perturbation) in a run's stats.json."""
    for stat in json.loads((run_path / "stats.json").read_text()):
        metric = stat["name"]
        if metric["name"] == name and metric.get("split") == split and not metric.get("perturbation"):
            return float(stat["mean"])
    raise AssertionError(f"no {name} on {split} in {run_path / 'stats.json'}")


def write_dist_info(site: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """A minimal installed distribution (``*.dist-info``) declaring ``helm`` entry points."""
    info = site / f"{dist}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[helm]\n{lines}")
    return info


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    return dst
