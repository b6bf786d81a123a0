"""The result type of every ``*_optimization_data`` function."""

from __future__ import annotations

from dataclasses import dataclass, field

from helm_optimizer._env import prepare_offline_environment

prepare_offline_environment()

from helm.benchmark.scenarios.scenario import Instance  # noqa: E402

__all__ = ["OptimizationData"]


@dataclass(frozen=True)
class OptimizationData:
    """Official non-test instances of a benchmark, for prompt optimization (never the test split).

    ``train`` and ``valid`` are built exactly like HELM's test instances (same input text and
    references) but carry ``split=train`` / ``split=valid``. Either may be empty: ``note`` then says
    why and what to do instead. ``sources`` lists the files or datasets read, one readable line each.
    """

    train: list[Instance]
    valid: list[Instance]
    sources: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def is_empty(self) -> bool:
        return not self.train and not self.valid
