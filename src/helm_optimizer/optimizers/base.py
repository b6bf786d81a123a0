"""The optimizer protocol and its registry.

Every optimizer turns a student program into an optimized one::

    optimizer.compile(student, trainset=..., valset=..., context=ctx) -> program

Built-ins are registered under DSPy's own names (``MIPROv2``, ``BootstrapFewShotWithRandomSearch``,
...), which are also the agent file names. Third-party optimizers register through the
``helm_optimizer.optimizers`` entry-point group::

    [project.entry-points."helm_optimizer.optimizers"]
    MyOptimizer = "my_package.optimizers:MyOptimizer"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from helm_optimizer.registry import Registry

__all__ = ["OPTIMIZERS", "OptimizeContext", "Optimizer", "register_optimizer"]


@dataclass
class OptimizeContext:
    """Everything an optimizer may use besides the data."""

    metric: Callable[..., float]
    feedback_metric: Callable[..., Any]
    task_lm: Any
    prompt_lm: Any
    max_bootstrapped_demos: int = 3
    max_labeled_demos: int = 3
    num_threads: int = 8
    seed: int = 0
    auto: str | None = "light"
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda _message: None


@runtime_checkable
class Optimizer(Protocol):
    """``compile`` returns the optimized program; it must not mutate ``student``."""

    name: ClassVar[str]
    program: ClassVar[str | None]  # force a program kind ("predict"/"cot"), or None to use the configured one
    needs_valset: ClassVar[bool]

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any: ...


OPTIMIZERS: Registry[type[Optimizer]] = Registry(
    "optimizer", group="helm_optimizer.optimizers", list_command="helm-optimizer list optimizers"
)


def register_optimizer(name: str) -> Callable[[type[Any]], type[Any]]:
    """Decorator registering an optimizer class under ``name`` (sets ``cls.name``)."""

    def wrap(cls: type[Any]) -> type[Any]:
        cls.name = name
        OPTIMIZERS.add(name, cls)
        return cls

    return wrap
