"""The cells of a sweep: optimize (scenario, model, optimizer) and evaluate (scenario, model), and their labels."""

from __future__ import annotations

from dataclasses import dataclass

from helm_optimizer.sweep.config import SweepConfig

__all__ = ["Cell", "plan_cells"]


@dataclass(frozen=True)
class Cell:
    """One unit of work: optimize (scenario, model, optimizer) or evaluate (scenario, model)."""

    kind: str  # "optimize" | "evaluate"
    scenario: int
    model: int
    optimizer: str | None = None

    def label(self, config: SweepConfig) -> str:
        scenario = config.scenarios[self.scenario].entry
        model = config.models[self.model].model
        return f"{self.kind} {scenario} · {model}" + (f" · {self.optimizer}" if self.optimizer else "")


def plan_cells(config: SweepConfig) -> tuple[list[Cell], list[Cell]]:
    optimize = [Cell("optimize", s, m, o) for s in range(len(config.scenarios)) for m in range(len(config.models))
                for o in config.optimizers]
    evaluate = [Cell("evaluate", s, m) for s in range(len(config.scenarios)) for m in range(len(config.models))]
    return optimize, evaluate
