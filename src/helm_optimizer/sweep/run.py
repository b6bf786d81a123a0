"""``helm-optimizer sweep``: optimize every cell, evaluate every method in HELM, summarize, report.

The sweep is resumable and idempotent: a cell whose agent and metadata match the configuration is
skipped, an evaluation whose record is current is skipped, and LM answers are cached, so re-running
after an interruption finishes the same table without repeating finished work. One process holds
the output directory at a time (a second one stops with a clear message).

Executors: ``local`` (the default) runs every cell through one dependency-driven scheduler
(:mod:`helm_optimizer.sweep.scheduler`): every optimization and every method's HELM run in worker
processes, every LM call through its endpoint's limits (declared per model); ``ray`` runs the same
units as Ray tasks with the limits in a Ray actor, writing to the same output directory (which must
therefore be on a file system every Ray worker can reach); ``serial`` runs one cell after another in
this process, each with ``num_threads`` concurrent LM calls and no shared limits but the sweep's
``max_cost``.
Before running, the sweep estimates itself (:mod:`helm_optimizer.sweep.estimate`); afterwards the
report directory holds the estimate beside the actual calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import directory_lock, remove_stale_temporaries, write_json_atomic
from helm_optimizer.errors import HelmOptimizerError
from helm_optimizer.records import EvaluationRecord, SweepState, write_record
from helm_optimizer.replies import keep_verdicts
from helm_optimizer.serving.limiter import LimiterHub, install_hub, use_hub
from helm_optimizer.serving.shared import RayHub
from helm_optimizer.sweep.cells import Cell, plan_cells
from helm_optimizer.sweep.config import SweepConfig, validate_sweep
from helm_optimizer.sweep.scheduler import (
    EVALUATION_PRIORITY,
    OPTIMIZATION_PRIORITY,
    LocalBackend,
    RayBackend,
    run_units,
)
from helm_optimizer.sweep.units import build_units, endpoint_specs, seconds_per_call

__all__ = ["Cell", "SweepResult", "plan_cells", "run_sweep"]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass
class SweepResult:
    output_dir: Path
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_html: Path | None = None
    summarize_path: Path | None = None
    failed: list[str] = field(default_factory=list)
    limits: dict[str, Any] | None = None  # the endpoints' limiter statistics (429s, back-off, waits)
    estimate_md: Path | None = None  # report/estimate.md: the estimate beside the actual calls


def _optimize_config(config: SweepConfig, cell: Cell) -> Any:
    from helm_optimizer.config import OptimizeConfig

    scenario = config.scenarios[cell.scenario]
    model = config.models[cell.model]
    assert cell.optimizer is not None
    return OptimizeConfig(
        scenario=scenario.entry, optimizer=cell.optimizer, lm=model.lm(), prompt_lm=model.prompt_model,
        program=config.program, max_bootstrapped_demos=config.max_bootstrapped_demos,
        max_labeled_demos=config.max_labeled_demos, num_threads=config.num_threads, val_size=config.val_size,
        train_size=config.train_size, limit=config.limit, seed=config.seed, auto=config.auto,
        data_dir=scenario.data_dir or config.data_dir, output_dir=config.output_dir, max_calls=config.max_calls,
        max_cost=config.max_cost_per_cell, metric=scenario.metric, on_overlap=scenario.on_overlap or config.on_overlap,
        optimizer_options=config.optimizer_options.get(cell.optimizer, {}), optimizer_seed=cell.optimizer_seed,
    )


def _methods(config: SweepConfig) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*config.methods, *config.optimizers]))


def run_cell(config: SweepConfig, cell: Cell, progress: Progress | None = None, *,
             methods: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run one cell in this process (an evaluation cell: ``methods`` only, default all); a JSON-able summary."""
    started = time.perf_counter()
    emit = progress or (lambda _e: None)
    if cell.kind == "optimize":
        from helm_optimizer.optimize import optimize

        result = optimize(_optimize_config(config, cell), plugins=tuple(config.plugins), progress=emit,
                          eval_limit=config.eval_limit)
        statuses = {a.status for a in result.agents}
        written = [a for a in result.agents if a.status == "written"]
        return {"status": "skipped" if statuses == {"up to date"} else "done", "lm_calls": result.lm_calls,
                "retries": sum(int(a.usage.get("retries") or 0) for a in written),
                **_usage_totals([a.usage for a in written]),
                "val_before": _mean([a.val_before for a in result.agents]),
                "val_after": _mean([a.val_after for a in result.agents]),
                "agents": [str(a.path) for a in result.agents], "wall_time_s": time.perf_counter() - started}
    from helm_optimizer.evaluate import EvaluationRequest, evaluate_methods

    scenario = config.scenarios[cell.scenario]
    model = config.models[cell.model]
    request = EvaluationRequest(
        scenario=scenario.entry, lm=model.lm(), methods=methods or _methods(config), output_dir=config.output_dir,
        suite=config.suite, seed=config.seed, eval_limit=config.eval_limit,
        data_dir=str(scenario.data_dir or config.data_dir) if (scenario.data_dir or config.data_dir) else None,
        plugins=tuple(config.plugins), num_threads=config.num_threads, helm_deployment=model.helm_deployment,
        metric=scenario.metric, on_overlap=scenario.on_overlap or config.on_overlap,
        optimizer_seeds=tuple(config.seeds) if config.seeds else None,
        allow_model_mismatch=model.allow_model_mismatch,
    )
    results = evaluate_methods(request, progress=emit)
    ran = [r.record for r in results if not r.reused]  # reused records made no call now
    everything = [r.record for r in results]
    return {"status": "done" if ran else "skipped", "lm_calls": sum(r.lm_calls for r in ran),
            "retries": sum(r.retries for r in ran), **(_usage_totals([r.model_dump() for r in ran]) if ran else {}),
            "means": _method_means(everything), "metric": everything[0].main_metric if everything else None,
            "records": len(results), "wall_time_s": time.perf_counter() - started}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _usage_totals(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens and cost summed over runs (cost None when any price is unknown)."""
    costs = [u.get("cost") for u in usages]
    known = [float(c) for c in costs if c is not None]
    return {"prompt_tokens": sum(int(u.get("prompt_tokens") or 0) for u in usages),
            "completion_tokens": sum(int(u.get("completion_tokens") or 0) for u in usages),
            "cost": None if len(known) < len(costs) else round(sum(known), 6)}


def _method_means(records: list[EvaluationRecord]) -> dict[str, float]:
    """The main metric per method, folds weighted by their instances (HELM's own aggregate per run)."""
    totals: dict[str, list[float]] = {}
    for record in records:
        weight = float(record.count or 1)
        entry = totals.setdefault(record.method, [0.0, 0.0])
        entry[0] += record.mean * weight
        entry[1] += weight
    return {method: total / weight for method, (total, weight) in totals.items() if weight}


def _run_payload(config: SweepConfig, payload: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """One scheduler unit: an optimization cell, or one method's evaluation."""
    cell = Cell(payload["kind"], payload["scenario"], payload["model"], payload.get("optimizer"),
                payload.get("optimizer_seed"))
    methods = (payload["method"],) if payload["kind"] == "evaluate" else None
    return run_cell(config, cell, progress, methods=methods)


def _unit_in_process(config_json: str, payload: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Body of a unit in a worker process (the limits were installed by the pool's initializer)."""
    return _run_payload(SweepConfig.model_validate_json(config_json), payload, progress)


def _unit_in_ray(config_json: str, payload: dict[str, Any], hub: Any, endpoints: list[str]) -> dict[str, Any]:
    """Body of a unit as a Ray task: the sweep's limits live in the Ray actor ``hub``."""
    priority = OPTIMIZATION_PRIORITY if payload["kind"] == "optimize" else EVALUATION_PRIORITY
    install_hub(RayHub(hub), endpoints, priority=priority)
    return _run_payload(SweepConfig.model_validate_json(config_json), payload)


class _LocalExecutor:
    def run(self, config: SweepConfig, cells: list[Cell], on_start: Progress, on_done: Progress) -> None:
        for cell in cells:
            label = cell.label(config)
            on_start({"cell": label})
            def progress(event: dict[str, Any], label: str = label) -> None:
                on_start({"cell": label, **event})

            try:
                summary = run_cell(config, cell, progress=progress)
            except HelmOptimizerError as exc:
                on_done({"cell": label, "status": "failed", "error": str(exc)})
                continue
            on_done({"cell": label, **summary})


def _serial(config: SweepConfig, optimize_cells: list[Cell], evaluate_cells: list[Cell], emit: Progress,
            on_done: Progress, result: SweepResult) -> None:
    """One cell after another: every optimization, then the evaluations whose optimizations all succeeded."""
    runner = _LocalExecutor()
    runner.run(config, optimize_cells, lambda e: emit({"running": e}), on_done)
    by_label = {c.label(config): c for c in optimize_cells}
    blocked = {(by_label[label].scenario, by_label[label].model) for label in result.failed if label in by_label}
    for cell in evaluate_cells:
        if (cell.scenario, cell.model) in blocked:
            on_done({"cell": cell.label(config), "status": "failed",
                     "error": "not evaluated: an optimization of this scenario and model failed"})
    runnable = [c for c in evaluate_cells if (c.scenario, c.model) not in blocked]
    runner.run(config, runnable, lambda e: emit({"running": e}), on_done)


def _estimate(config: SweepConfig) -> Any:
    from helm_optimizer.sweep.estimate import estimate_sweep

    try:
        return estimate_sweep(config)
    except Exception as exc:  # the estimate orders work and is reported; the sweep runs without it
        logger.warning("Could not estimate the sweep (%s: %s); running without an estimate.", type(exc).__name__, exc)
        return None


def _scheduled(config: SweepConfig, executor: str, address: str | None, num_workers: int | None, emit: Progress,
               on_done: Progress, estimate: Any) -> dict[str, Any] | None:
    """Run every unit through the scheduler on the local or Ray backend; the limiter's statistics."""
    units = build_units(config, estimate)
    endpoints = endpoint_specs(config)
    config_json = config.model_dump_json()
    backend: Any
    if executor == "ray":
        backend = RayBackend(run_task=_unit_in_ray, config_json=config_json, address=address, num_cpus=num_workers,
                             endpoints=endpoints, max_cost=config.max_cost)
    else:
        workers = config.helm_workers or max(2, min(8, os.cpu_count() or 2))
        cells = config.max_parallel_cells or min(16, 2 * len(config.models))
        backend = LocalBackend(run_unit=_unit_in_process, config_json=config_json, max_parallel_cells=cells,
                               helm_workers=workers, endpoints=endpoints, max_cost=config.max_cost)
    with backend.running():
        run_units(units, backend, on_start=lambda e: emit({"running": e}), on_done=on_done,
                  seconds_per_call=seconds_per_call(config, estimate))
        stats: dict[str, Any] | None = backend.hub.stats() if backend.hub is not None else None
    return stats


def run_sweep(config: SweepConfig, *, executor: str = "local", address: str | None = None,
              num_workers: int | None = None, progress: Progress | None = None) -> SweepResult:
    """Run the whole sweep (see the module docstring); returns where everything is."""
    emit = progress or (lambda _e: None)
    validate_sweep(config)
    output_dir = config.output_dir
    result = SweepResult(output_dir=output_dir)
    with directory_lock(output_dir, what="sweep"), keep_verdicts():
        stale = remove_stale_temporaries(output_dir)
        if stale:
            logger.info("Removed %d temporary file(s) left by an interrupted run in %s", stale, output_dir)
        write_record(output_dir / "sweep.json", SweepState(config=config.model_dump(mode="json")))
        _plan_embedded_servers(config)
        if executor not in ("local", "ray", "serial"):
            raise HelmOptimizerError(f"Unknown executor '{executor}'; use local or ray (or serial: one cell at a "
                                     "time).")
        optimize_cells, evaluate_cells = plan_cells(config)
        started = time.perf_counter()

        def on_done(event: dict[str, Any]) -> None:
            result.cells[event["cell"]] = event
            if event.get("status") == "failed":
                result.failed.append(event["cell"])
                logger.error("%s failed: %s", event["cell"], event.get("error"))
            emit({"done": event})

        estimate = None
        if executor == "serial":
            with _sweep_budget(config) as hub:
                _serial(config, optimize_cells, evaluate_cells, emit, on_done, result)
                result.limits = hub.stats() if hub is not None else None
        else:
            emit({"running": {"cell": "estimate", "stage": "estimating the sweep"}})
            estimate = _estimate(config)
            if estimate is not None:
                write_json_atomic(output_dir / "estimate.json", estimate.as_json())
                if config.max_cost is not None and (estimate.cost or 0.0) > config.max_cost:
                    logger.warning("The sweep is estimated at $%.2f, over max_cost $%g: it will stop before it ends.",
                                   estimate.cost, config.max_cost)
            result.limits = _scheduled(config, executor, address, num_workers, emit, on_done, estimate)
        wall = time.perf_counter() - started
        from helm_optimizer.serving.sharing import stop_servers

        stop_servers()  # helm-summarize and the report need no model: free the embedded one's memory first
        from helm_optimizer.sweep.summarize import helm_summarize, write_deployments

        write_deployments(config)
        evaluations = output_dir / "evaluations"
        has_records = evaluations.is_dir() and any(evaluations.rglob("*.json"))
        if config.summarize:
            result.summarize_path = _final_step(emit, "helm-summarize", "summarizing", has_records,
                                                lambda: helm_summarize(config))
        if config.report and not has_records:
            logger.warning("No evaluation finished, so there is no report to write.")
        if estimate is not None:  # before the report, which shows it
            from helm_optimizer.sweep.estimate_report import write_comparison

            result.estimate_md = write_comparison(config, estimate, result.limits, wall)
        if config.report:
            from helm_optimizer.report import build_report

            result.report_html = _final_step(emit, "report", "building the report", has_records,
                                             lambda: build_report(output_dir, seed=config.seed).html)
    return result


@contextlib.contextmanager
def _sweep_budget(config: SweepConfig) -> Iterator[LimiterHub | None]:
    """The serial executor shares no limits between cells, but the sweep's ``max_cost`` holds: a hub in
    this process that counts every call's cost and caps nothing else."""
    if config.max_cost is None:
        yield None
        return
    specs = [{**spec, "max_concurrency": 1 << 20, "requests_per_minute": None, "tokens_per_minute": None}
             for spec in endpoint_specs(config)]
    hub = LimiterHub(specs, config.max_cost)
    with use_hub(hub, [spec["name"] for spec in specs]):
        yield hub


def _plan_embedded_servers(config: SweepConfig) -> None:
    """Size each embedded model's one server for the stages' concurrency (optimization and HELM both
    run ``num_threads`` requests at a time) before the first stage starts it."""
    from helm_optimizer.serving.models import is_embedded_model
    from helm_optimizer.serving.sharing import plan_slots

    for spec in config.models:
        for lm in (spec, spec.prompt_model):
            if lm is not None and is_embedded_model(lm.model):
                plan_slots(lm.model, config.num_threads)


def _final_step(emit: Progress, cell: str, stage: str, has_records: bool, step: Callable[[], Path]) -> Path | None:
    """Run ``helm-summarize`` or the report as a display row that ends done, failed or skipped."""
    if not has_records:
        emit({"done": {"cell": cell, "status": "skipped", "error": "no evaluation finished"}})
        return None
    emit({"running": {"cell": cell, "stage": stage}})
    started = time.perf_counter()
    try:
        path = step()
    except HelmOptimizerError as exc:
        emit({"done": {"cell": cell, "status": "failed", "error": str(exc)}})
        raise
    emit({"done": {"cell": cell, "status": "done", "path": str(path), "wall_time_s": time.perf_counter() - started}})
    return path
