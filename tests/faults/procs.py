"""Helpers for the fault, bad-input and CLI tests: warm child processes, tiny sweeps, output checks."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"
MODEL = "openai/faults-model"  # a name no other test module registers with HELM
KEY_ENV = "HOPT_FAULTS_API_KEY"
SENTINEL_KEY = "sk-hopt-SENTINEL-5e1f09c7d2b4"

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["tests.faults._warm"])


@dataclass
class Child:
    process: BaseProcess
    log: Path

    def wait(self, timeout: float = 300) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(10)
            raise AssertionError(f"child did not finish in {timeout}s; log: {self.tail()}")
        return int(self.process.exitcode)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""


def start_cli(argv: list[str], log: Path, env: dict[str, str | None] | None = None,
              fault: tuple[str, list[str]] | None = None) -> Child:
    """Run ``helm-optimizer ARGV`` in a child forked from the warm server; output goes to ``log``."""
    from tests.faults._warm import cli_child

    # Not daemonic: the sweep starts processes of its own (HELM workers, the limits hub), as it does for a user.
    process = _CTX.Process(target=cli_child, args=(argv, dict(env or {}), str(log), fault), daemon=False)
    process.start()
    return Child(process, log)


def run_cli(argv: list[str], log: Path, env: dict[str, str | None] | None = None,
            fault: tuple[str, list[str]] | None = None, timeout: float = 300) -> tuple[int, str]:
    child = start_cli(argv, log, env, fault)
    code = child.wait(timeout)
    return code, child.tail(100_000)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def tiny_sweep(api_base: str, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """One scenario (the bundled head_qa slice), one model, two optimizers, two extra methods."""
    config: dict[str, Any] = {
        "output_dir": str(output_dir),
        "suite": "faults",
        "seed": 0,
        "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)}],
        "optimizers": ["LabeledFewShot", "BootstrapFewShotWithRandomSearch"],
        "models": [{"model": MODEL, "api_base": api_base, "api_key_env": KEY_ENV, "timeout": 2,
                    "num_retries": 4}],
        "methods": ["baseline", "ZeroShotCoT"],
        "max_bootstrapped_demos": 1,
        "max_labeled_demos": 2,
        "num_threads": 4,
        "limit": 8,
        "eval_limit": 8,
        "optimizer_options": {"BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 2}},
        "summarize": False,
    }
    config.update(overrides)
    return config


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def child_env(cache_dir: Path, **extra: str | None) -> dict[str, str | None]:
    return {KEY_ENV: SENTINEL_KEY, "HELM_OPTIMIZER_CACHE_DIR": str(cache_dir), **extra}


def table_rows(output_dir: Path) -> list[dict[str, Any]]:
    rows = json.loads((output_dir / "report" / "report.json").read_text(encoding="utf-8"))["rows"]
    keep = ("scenario", "model", "method", "n", "mean", "ci_low", "ci_high", "delta", "p_value")
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["scenario"], r["model"], r["method"]))


def agent_bytes(output_dir: Path) -> dict[str, bytes]:
    """Every agent file (not metadata) under OUTPUT_DIR/agents, by relative path."""
    root = output_dir / "agents"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))
            if not p.name.endswith(".meta.json")}


def records(output_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((output_dir / "evaluations").rglob("*.json"))]


def metas(output_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((output_dir / "agents").rglob("*.meta.json"))]


def check_json_complete(output_dir: Path) -> int:
    """Every JSON file we write parses; so do HELM's files of every run an evaluation record claims.

    HELM's other run directories may be half written by a killed run (a re-run rewrites them);
    DSPy's and HELM's caches are databases, not JSON. Returns the number of files checked.
    """
    checked = 0
    helm_root = output_dir / "helm"
    for path in sorted(output_dir.rglob("*.json")):
        if helm_root in path.parents:
            continue
        json.loads(path.read_text(encoding="utf-8"))  # raises on a partial or corrupt file
        checked += 1
    evaluations = output_dir / "evaluations"
    for record_file in sorted(evaluations.rglob("*.json")) if evaluations.is_dir() else []:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        run_dir = output_dir / record["run_dir"]
        files = sorted(run_dir.glob("*.json"))
        assert {"stats.json", "scenario_state.json", "run_spec.json"} <= {f.name for f in files}, run_dir
        for path in files:
            json.loads(path.read_text(encoding="utf-8"))
            checked += 1
    return checked


def snapshot(directory: Path, *, skip: tuple[str, ...] = ("logs", ".locks")) -> dict[str, str]:
    """sha256 of every file under ``directory`` (except the named top-level folders).

    ``.locks`` holds the empty files of the per-cell locks a run takes: coordination, not results.
    """
    out = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and rel.parts[0] not in skip:
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def wait_for(predicate: Any, timeout: float, what: str, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if child is not None and child.process.exitcode is not None:
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}" + (f"; log: {child.tail()}" if child else ""))
