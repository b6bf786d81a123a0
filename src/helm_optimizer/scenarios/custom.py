"""The reference tool's custom-scenario API, kept working.

A class with ``make_prompt(row)``, ``metric(example, pred, trace=None)`` and
``load_data() -> (trainset, valset)`` is registered with :func:`scenario` (or through the
``helm_optimizer.scenarios`` entry-point group) and optimized like any HELM scenario::

    import helm_optimizer

    @helm_optimizer.scenario("my_benchmark")
    class my_benchmark:
        def __init__(self, test_size=0.1, seed=42): ...
        @staticmethod
        def make_prompt(row): return f"Question: {row['question']}\\nAnswer:"
        @staticmethod
        def metric(example, pred, trace=None): return example.output == pred.output
        def load_data(self): return trainset, valset   # lists of dspy.Example(inputs=..., output=...)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from helm_optimizer.errors import DataError, PluginError
from helm_optimizer.registry import Registry

__all__ = ["CUSTOM_SCENARIOS", "custom_examples", "instantiate_custom", "scenario"]

CUSTOM_SCENARIOS: Registry[Any] = Registry(
    "custom scenario", group="helm_optimizer.scenarios", list_command="helm-optimizer scenarios list"
)
_REQUIRED = ("make_prompt", "metric", "load_data")

T = TypeVar("T")


def _check_class(name: str, cls: Any) -> None:
    missing = [attr for attr in _REQUIRED if not callable(getattr(cls, attr, None))]
    if missing:
        raise PluginError(
            f"Custom scenario '{name}' ({getattr(cls, '__module__', '?')}) lacks {', '.join(missing)}; "
            "a custom scenario needs make_prompt(row), metric(example, pred, trace=None) and load_data()."
        )


def scenario(name: str) -> Callable[[T], T]:
    """Register a reference-style scenario class under ``name``."""

    def wrap(cls: T) -> T:
        _check_class(name, cls)
        CUSTOM_SCENARIOS.add(name, cls)
        return cls

    return wrap


def instantiate_custom(name: str, *, seed: int) -> Any:
    cls = CUSTOM_SCENARIOS.get(name)
    _check_class(name, cls)
    params = inspect.signature(cls).parameters
    try:
        return cls(seed=seed) if "seed" in params else cls()
    except Exception as exc:
        raise PluginError(f"Custom scenario '{name}' could not be created: {type(exc).__name__}: {exc}") from exc


def custom_examples(name: str, instance: Any) -> tuple[list[Any], list[Any]]:
    """Call ``load_data()`` and check that every example has ``inputs`` and ``output``."""
    try:
        loaded = instance.load_data()
        trainset, valset = loaded
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"load_data() of custom scenario '{name}' must return (trainset, valset); it failed with {exc}."
        ) from exc
    except Exception as exc:
        raise DataError(f"load_data() of custom scenario '{name}' failed: {type(exc).__name__}: {exc}") from exc
    out: list[list[Any]] = []
    for label, examples in (("trainset", trainset), ("valset", valset)):
        checked = []
        for i, example in enumerate(list(examples or [])):
            keys = set(example.keys()) if hasattr(example, "keys") else set()
            if not {"inputs", "output"} <= keys:
                raise DataError(
                    f"Custom scenario '{name}': {label}[{i}] has fields {sorted(keys)}; every example needs "
                    "'inputs' and 'output' (dspy.Example(inputs=..., output=...).with_inputs('inputs'))."
                )
            checked.append(example.with_inputs("inputs"))
        out.append(checked)
    if not out[0]:
        raise DataError(f"Custom scenario '{name}': load_data() returned an empty trainset.")
    return out[0], out[1]
