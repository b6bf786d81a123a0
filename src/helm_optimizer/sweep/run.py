"""``helm-optimizer sweep``: optimize every cell, evaluate every method in HELM, summarize, report.

The sweep is resumable and idempotent: a cell whose agent and metadata match the configuration is
skipped, an evaluation whose record is current is skipped, and LM answers are cached, so re-running
after an interruption finishes the same table without repeating finished work. One process holds
the output directory at a time (a second one stops with a clear message).

Cells run on an existing engine, never a home-made scheduler: ``local`` runs them in this process
(each cell uses ``num_threads`` concurrent LM calls); ``ray`` runs each cell as a Ray task on a
Ray cluster (``ray.init(address=...)``) and writes results to the same output directory, which
must therefore be on a file system every Ray worker can reach.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import directory_lock, remove_stale_temporaries
from helm_optimizer.errors import HelmOptimizerError
from helm_optimizer.records import EvaluationRecord, SweepState, write_record
from helm_optimizer.replies import keep_verdicts
from helm_optimizer.sweep.config import SweepConfig, validate_sweep

__all__ = ["Cell", "SweepResult", "plan_cells", "run_sweep"]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


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


@dataclass
class SweepResult:
    output_dir: Path
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    report_html: Path | None = None
    summarize_path: Path | None = None
    failed: list[str] = field(default_factory=list)


def plan_cells(config: SweepConfig) -> tuple[list[Cell], list[Cell]]:
    seeds: list[int | None] = list(config.seeds) if config.seeds else [None]
    optimize = [Cell("optimize", s, m, o, seed) for s in range(len(config.scenarios))
                for m in range(len(config.models)) for o in config.optimizers for seed in seeds]
    evaluate = [Cell("evaluate", s, m) for s in range(len(config.scenarios)) for m in range(len(config.models))]
    return optimize, evaluate


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
        max_cost=config.max_cost, metric=scenario.metric, on_overlap=scenario.on_overlap or config.on_overlap,
        optimizer_options=config.optimizer_options.get(cell.optimizer, {}), optimizer_seed=cell.optimizer_seed,
    )


def _methods(config: SweepConfig) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*config.methods, *config.optimizers]))


def run_cell(config: SweepConfig, cell: Cell, progress: Progress | None = None) -> dict[str, Any]:
    """Run one cell in this process; returns a JSON-able summary (also what a Ray task returns)."""
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
        scenario=scenario.entry, lm=model.lm(), methods=_methods(config), output_dir=config.output_dir,
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


def _ray_cell(config_json: str, cell: dict[str, Any]) -> dict[str, Any]:
    """Body of the Ray task: rebuild the config and run the cell in the worker process."""
    config = SweepConfig.model_validate_json(config_json)
    return run_cell(config, Cell(**cell))


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


class _RayExecutor:
    def __init__(self, address: str | None, num_cpus: int | None) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def run(self, config: SweepConfig, cells: list[Cell], on_start: Progress, on_done: Progress) -> None:
        try:
            import ray
        except ImportError as exc:
            raise HelmOptimizerError(
                "The ray executor needs Ray: pip install 'helm-optimizer[ray]' (or pip install ray)."
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self.address} if self.address else {
                "num_cpus": self.num_cpus, "include_dashboard": False}
            ray.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_cell)
        config_json = config.model_dump_json()
        pending = {}
        for cell in cells:
            label = cell.label(config)
            on_start({"cell": label, "stage": "queued on Ray"})
            ref = task.remote(config_json, {"kind": cell.kind, "scenario": cell.scenario, "model": cell.model,
                                            "optimizer": cell.optimizer, "optimizer_seed": cell.optimizer_seed})
            pending[ref] = label
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                label = pending.pop(ref)
                try:
                    summary: dict[str, Any] = ray.get(ref)
                    on_done({"cell": label, **summary})
                except Exception as exc:  # a failed Ray task
                    cause = getattr(exc, "cause", exc)
                    on_done({"cell": label, "status": "failed", "error": f"{type(cause).__name__}: {cause}"})


def _plan_embedded_servers(config: SweepConfig) -> None:
    """Size each embedded model's one server for the stages' concurrency (optimization and HELM both
    run ``num_threads`` requests at a time) before the first stage starts it."""
    from helm_optimizer.serving.models import is_embedded_model
    from helm_optimizer.serving.sharing import plan_slots

    for spec in config.models:
        for lm in (spec, spec.prompt_model):
            if lm is not None and is_embedded_model(lm.model):
                plan_slots(lm.model, config.num_threads)


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
        if executor == "local":
            runner: Any = _LocalExecutor()
        elif executor == "ray":
            runner = _RayExecutor(address, num_workers)
        else:
            raise HelmOptimizerError(f"Unknown executor '{executor}'; use local or ray.")
        optimize_cells, evaluate_cells = plan_cells(config)

        by_label = {c.label(config): c for c in optimize_cells + evaluate_cells}

        def on_done(event: dict[str, Any]) -> None:
            result.cells[event["cell"]] = event
            if event.get("status") == "failed":
                result.failed.append(event["cell"])
                logger.error("%s failed: %s", event["cell"], event.get("error"))
            emit({"done": event})

        runner.run(config, optimize_cells, lambda e: emit({"running": e}), on_done)
        blocked = {(by_label[label].scenario, by_label[label].model) for label in result.failed}
        for cell in evaluate_cells:
            if (cell.scenario, cell.model) in blocked:
                on_done({"cell": cell.label(config), "status": "failed",
                         "error": "not evaluated: an optimization of this scenario and model failed"})
        runnable = [c for c in evaluate_cells if (c.scenario, c.model) not in blocked]
        runner.run(config, runnable, lambda e: emit({"running": e}), on_done)
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
        if config.report:
            from helm_optimizer.report import build_report

            result.report_html = _final_step(emit, "report", "building the report", has_records,
                                             lambda: build_report(output_dir, seed=config.seed).html)
    return result


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
