"""HELM's leaderboard for a sweep: deployment files for ``helm-server`` and ``helm-summarize``."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from helm_optimizer._env import child_environment
from helm_optimizer.errors import HelmRunError
from helm_optimizer.sweep.config import SweepConfig

__all__ = ["helm_summarize", "write_deployments"]

logger = logging.getLogger(__name__)


def helm_dirs(config: SweepConfig) -> tuple[Path, Path]:
    base = config.output_dir / "helm"
    return base / "benchmark_output", base / "prod_env"


def write_deployments(config: SweepConfig) -> list[Path]:
    """Write every model's baseline and DSPy-method deployments (no secrets) to the sweep's prod_env.

    ``helm-summarize`` and ``helm-server`` read model names and display names from there; the
    ``helm-run`` commands printed by ``helm-optimizer register`` read the same files.
    """
    from helm_optimizer.helm.deployments import (
        DeploymentSet,
        agent_deployments,
        baseline_deployment,
        core_set,
        write_prod_env,
    )
    from helm_optimizer.naming import METHOD_BASELINE

    _, local_path = helm_dirs(config)
    out = core_set()
    agents_dir = str((config.output_dir / "agents").resolve())
    methods = [m for m in dict.fromkeys([*config.methods, *config.optimizers]) if m != METHOD_BASELINE]
    for spec in config.models:
        lm = spec.lm().public_dict()
        if not spec.helm_deployment:
            out.extend(baseline_deployment(lm))
        out.extend(agent_deployments(lm, methods, agents_dir=agents_dir))
    # embedded models come from core_set(); keep one entry per name
    seen: set[str] = set()
    unique = DeploymentSet(tokenizer_configs=out.tokenizer_configs)
    for dep, meta in zip(out.model_deployments, out.models, strict=True):
        if dep["name"] not in seen:
            seen.add(dep["name"])
            unique.model_deployments.append(dep)
            unique.models.append(meta)
    return write_prod_env(local_path, unique)


def helm_summarize(config: SweepConfig, *, timeout: float = 1800) -> Path:
    """Run ``helm-summarize`` for the sweep's suite; returns the suite directory HELM wrote."""
    output_path, local_path = helm_dirs(config)
    log_dir = config.output_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "helm-summarize.log"
    # One thread: helm-summarize compiles its Mako templates in each of its threads, and CPython 3.11's
    # compiler is not safe for that ("SystemError: AST constructor recursion depth mismatch", now and then);
    # its work per run is JSON parsing under the GIL, so threads gain it little.
    command = [sys.executable, "-m", "helm.benchmark.presentation.summarize", "--suite", config.suite,
               "-o", str(output_path), "--local-path", str(local_path), "--auto-generate-schema",
               "--schema-validation", "warn", "--num-threads", "1"]
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False,
                                   env=child_environment())
    if completed.returncode != 0:
        tail = " | ".join(log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:])
        raise HelmRunError(f"helm-summarize failed (exit {completed.returncode}); see {log_path}: {tail}")
    return output_path / "runs" / config.suite
