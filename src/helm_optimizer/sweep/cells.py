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
    optimizer_seed: int | None = None  # one of the sweep's ``seeds`` (None: a single-seed sweep)

    def label(self, config: SweepConfig) -> str:
        scenario = config.scenarios[self.scenario].entry
        model = config.models[self.model].model
        seed = f" · seed {self.optimizer_seed}" if self.optimizer_seed is not None else ""
        return f"{self.kind} {scenario} · {model}" + (f" · {self.optimizer}" if self.optimizer else "") + seed


def plan_cells(config: SweepConfig) -> tuple[list[Cell], list[Cell]]:
    seeds: list[int | None] = list(config.seeds) if config.seeds else [None]
    optimize = [Cell("optimize", s, m, o, seed) for s in range(len(config.scenarios))
                for m in range(len(config.models)) for o in config.optimizers for seed in seeds]
    evaluate = [Cell("evaluate", s, m) for s in range(len(config.scenarios)) for m in range(len(config.models))]
    return optimize, evaluate
