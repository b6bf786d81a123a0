"""helm-optimizer: per-model DSPy prompt optimization for HELM benchmarks, evaluated inside HELM.

The public API is imported lazily so that ``import helm_optimizer`` (and the CLI's ``--help``)
stays fast: HELM, DSPy and torch load only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "LMConfig": "helm_optimizer.config",
    "OptimizeConfig": "helm_optimizer.config",
    "SweepConfig": "helm_optimizer.sweep.config",
    "optimize": "helm_optimizer.optimize",
    "run_benchmark": "helm_optimizer.helm.runner",
    "run_sweep": "helm_optimizer.sweep.run",
    "build_report": "helm_optimizer.report.build",
    "load_dataset": "helm_optimizer.scenarios.dataset",
    "scenario": "helm_optimizer.scenarios.custom",
    "load_agent": "helm_optimizer.agents.store",
    "EmbeddedServer": "helm_optimizer.serving.embedded",
    "FakeOpenAIServer": "helm_optimizer.serving.fake",
    "HelmOptimizerError": "helm_optimizer.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'helm_optimizer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
