"""Optimizers: one registry, DSPy's names, entry points for third parties."""

from helm_optimizer.optimizers import builtin as _builtin  # noqa: F401  (registers the built-ins)
from helm_optimizer.optimizers.base import OPTIMIZERS, OptimizeContext, Optimizer, register_optimizer

__all__ = ["OPTIMIZERS", "OptimizeContext", "Optimizer", "register_optimizer"]
