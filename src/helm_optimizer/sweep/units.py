"""A sweep as scheduler units, and its endpoints as limiter specs.

Units: one per optimization cell, one per (scenario, model, method) evaluation; an optimizer's
evaluation needs that optimizer's cell. Endpoints: one per model (and per prompt model that is not
also a model), with the model's declared limits, prices and completion reserve for the budget.
"""

from __future__ import annotations

from typing import Any

from helm_optimizer.sweep.cells import Cell, plan_cells
from helm_optimizer.sweep.config import SweepConfig
from helm_optimizer.sweep.estimate import SweepEstimate
from helm_optimizer.sweep.scheduler import Unit

__all__ = ["build_units", "endpoint_specs", "seconds_per_call"]

_DEFAULT_COMPLETION_RESERVE = 1024


def _methods(config: SweepConfig) -> list[str]:
    return list(dict.fromkeys([*config.methods, *config.optimizers]))


def build_units(config: SweepConfig, estimate: SweepEstimate | None = None) -> list[Unit]:
    optimize_cells, evaluate_cells = plan_cells(config)
    units: list[Unit] = []

    def calls(label: str, method: str | None = None) -> float:
        cell = estimate.cell(label) if estimate is not None else None
        if cell is None or cell.lm_calls is None:
            return 1.0
        return cell.by_method.get(method, 1.0) if method is not None else cell.lm_calls

    for cell in optimize_cells:
        label = cell.label(config)
        units.append(Unit(key=label, cell=label, kind="optimize", endpoint=config.models[cell.model].model,
                          payload={"kind": "optimize", "scenario": cell.scenario, "model": cell.model,
                                   "optimizer": cell.optimizer, "optimizer_seed": cell.optimizer_seed},
                          weight=calls(label)))
    for cell in evaluate_cells:
        label = cell.label(config)
        for method in _methods(config):
            seeds: list[int | None] = list(config.seeds) if config.seeds else [None]
            needs = tuple(Cell("optimize", cell.scenario, cell.model, method, seed).label(config) for seed in seeds) \
                if method in config.optimizers else ()
            units.append(Unit(key=f"{label} · {method}", cell=label, kind="evaluate",
                              endpoint=config.models[cell.model].model,
                              payload={"kind": "evaluate", "scenario": cell.scenario, "model": cell.model,
                                       "method": method}, needs=needs, weight=calls(label, method)))
    return units


def endpoint_specs(config: SweepConfig) -> list[dict[str, Any]]:
    """Plain-data :class:`~helm_optimizer.serving.limiter.EndpointSpec` of every model (and prompt model)."""
    from helm_optimizer.lm import prices_for

    specs: dict[str, dict[str, Any]] = {}
    for model in config.models:
        lm = model.lm()
        prices = prices_for(lm)
        specs[model.model] = {
            "name": model.model, "max_concurrency": model.limits.max_concurrency or config.num_threads,
            "requests_per_minute": model.limits.requests_per_minute,
            "tokens_per_minute": model.limits.tokens_per_minute,
            "input_price": prices.input_per_token, "output_price": prices.output_per_token,
            "completion_reserve": lm.max_tokens or _DEFAULT_COMPLETION_RESERVE,
        }
    for model in config.models:
        prompt = model.prompt_model
        if prompt is not None and prompt.model not in specs:
            prices = prices_for(prompt)
            specs[prompt.model] = {"name": prompt.model, "max_concurrency": config.num_threads,
                                   "input_price": prices.input_per_token, "output_price": prices.output_per_token,
                                   "completion_reserve": prompt.max_tokens or _DEFAULT_COMPLETION_RESERVE}
    return list(specs.values())


def seconds_per_call(config: SweepConfig, estimate: SweepEstimate | None) -> dict[str, float]:
    """Each endpoint's expected seconds per call of its capacity (latency ÷ concurrency)."""
    if estimate is None:
        return {}
    return {name: float(e["latency_s"]) / max(1, int(e["max_concurrency"])) for name, e in estimate.endpoints.items()}
