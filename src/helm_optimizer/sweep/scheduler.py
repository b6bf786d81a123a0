"""One scheduler for every cell of a sweep: work starts when its inputs exist, and the endpoints are the limit.

The work of a sweep is cut into *units*: one per optimization cell (scenario × model × optimizer)
and one per evaluated method of a (scenario, model) — a HELM run (one per fold for cross-fitted
agents). A method's evaluation waits only for its own agent: baseline and zero-shot evaluations
start at once, while the optimizers still run, and an agent is evaluated as soon as it is written.

Where units run is the backend's business:

* :class:`LocalBackend`: worker processes of this machine, one unit per process at a time (DSPy and
  HELM keep process-global state — progress bars, deployment registries, the output path — and this
  package counts an evaluation's LM calls and retries per process): at most ``max_parallel_cells``
  optimizations and ``helm_workers`` HELM runs at once. Every LM call of all of them waits for its
  endpoint's slot in one :class:`~helm_optimizer.serving.limiter.LimiterHub`, kept in a manager
  process the workers share.
* :class:`RayBackend`: every unit is a Ray task; the hub is a Ray actor shared by every worker.

Among the units that are ready, those of the endpoint with the most estimated work left run first
(the sweep cannot end before its slowest endpoint); at a busy endpoint, optimization calls get
slots before evaluation calls (evaluations of agents wait for them, baseline and zero-shot
evaluations fill the gaps), and while an endpoint still optimizes only one of its evaluations runs.
The scheduler only changes *when* work runs: each unit does exactly what the one-cell-at-a-time
executor does for it, so the agents, records and the table are the same.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from helm_optimizer.serving.limiter import Hub, install_hub, set_priority, use_hub
from helm_optimizer.serving.shared import RayHub, lifeline, ray_hub, shared_hub, watch_lifeline

__all__ = ["Backend", "LocalBackend", "RayBackend", "Unit", "in_worker", "run_units", "warm_up", "worker_init"]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
# At a busy endpoint, optimizations' calls go first: evaluations of agents wait for them, and the
# baseline and zero-shot evaluations, which nothing waits for, fill the slots they leave.
OPTIMIZATION_PRIORITY, EVALUATION_PRIORITY = 0, 1
# While an endpoint's optimizations run, that many of its evaluations run beside them (filling the
# slots the optimizations leave) rather than holding workers the other endpoints' evaluations need.
_EVALUATIONS_BESIDE_OPTIMIZATIONS = 1
# Runs one unit: (payload, progress) -> summary; in this process (threads) or, pickled by name, elsewhere.
UnitRunner = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Unit:
    """One piece of a cell's work; ``needs`` are keys of units that must succeed first."""

    key: str
    cell: str
    kind: str  # "optimize" | "evaluate"
    endpoint: str
    payload: dict[str, Any]
    needs: tuple[str, ...] = ()
    weight: float = 1.0  # estimated LM calls: the order among ready units


class Backend(Protocol):
    def fits(self, unit: Unit, running: dict[str, int]) -> bool:
        """Whether ``unit`` may start while ``running`` units of each kind run."""
        ...

    def submit(self, unit: Unit, progress: Progress) -> Future[dict[str, Any]]: ...

    def stop(self, reason: str) -> None: ...


# ----------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------
_events: Any = None  # in a worker: the queue its units' progress events go to


@dataclass(frozen=True)
class LogTarget:
    """Where and how the sweep logs, for its worker processes to log the same way into the same file."""

    path: str | None
    level: int  # the file handler's level
    loggers: dict[str, int]  # levels set on named loggers (the noisy libraries quieted)


def worker_init(hub: Hub, endpoints: list[str], life: Connection, events: Any, environ: dict[str, str],
                log: LogTarget) -> None:
    """Initializer of a worker process: die with the sweep, share its limits, report progress, log to its log.

    ``environ`` is the sweep's environment when the pool started (a forked worker would otherwise see
    the forkserver's, from whenever that started); it travels in memory only.
    """
    global _events
    watch_lifeline(life)
    os.environ.clear()
    os.environ.update(environ)
    install_hub(hub, endpoints)
    _events = events
    if log.path:
        handler = logging.FileHandler(log.path, encoding="utf-8")
        handler.setLevel(log.level)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [worker %(process)d] %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(min(log.level, logging.INFO))
        for name, level in log.loggers.items():
            logging.getLogger(name).setLevel(level)
        _drop_console_handlers()
        # HELM's and DSPy's own prints and progress bars go to the log, not over the sweep's progress display.
        fd = os.open(log.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _drop_console_handlers() -> None:
    """Libraries' own handlers to stderr (``datasets`` has one) would write every record a second time
    into the log, where this worker's stderr goes; their records still reach the log through the root."""
    for logger in list(logging.root.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger) or not logger.propagate:
            continue
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout):
                logger.removeHandler(handler)


def in_worker(run: UnitRunner, config_json: str, payload: dict[str, Any], label: str) -> dict[str, Any]:
    """A unit in a worker process; its progress events travel back to the sweep through the queue."""

    def progress(event: dict[str, Any]) -> None:
        if _events is not None:
            _events.put((label, event))

    set_priority(OPTIMIZATION_PRIORITY if payload.get("kind") == "optimize" else EVALUATION_PRIORITY)
    return run(config_json, payload, progress)


def _log_target() -> LogTarget:
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    loggers = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET}
    if handler is None:
        return LogTarget(None, logging.INFO, loggers)
    return LogTarget(handler.baseFilename, handler.level or logging.INFO, loggers)


def _process_context() -> BaseContext:
    """Forkserver where there is one (children fork from one preloaded process, cheaply); else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["helm_optimizer.sweep.preload"])
        return context
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start loading the worker template (HELM, DSPy) now, in its own process; returns at once.

    The local executor's workers fork from it; a command that calls this first overlaps those
    seconds with its own start-up (reading the config, loading HELM to validate it).
    """
    context = _process_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class LocalBackend:
    """Units in worker processes of this machine, one unit per process at a time.

    DSPy and HELM both keep process-global state (DSPy's progress bars, HELM's registries, the
    per-process LM call counters of an evaluation), so no two units share a process at once. One
    pool of ``max_parallel_cells + helm_workers`` processes: at most ``max_parallel_cells`` run
    optimizations, any free one an evaluation (so that at the end every process evaluates). The
    limits live in one hub in a manager process; every worker's LM calls go through it.
    """

    def __init__(self, *, run_unit: UnitRunner, config_json: str, max_parallel_cells: int, helm_workers: int,
                 endpoints: list[dict[str, Any]], max_cost: float | None) -> None:
        self._run_unit = run_unit
        self._config_json = config_json
        self._cells = max_parallel_cells
        self._workers = max_parallel_cells + helm_workers
        self._endpoints = endpoints
        self._max_cost = max_cost
        self.hub: Hub | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._progress: dict[str, Progress] = {}

    @contextmanager
    def running(self) -> Iterator[LocalBackend]:
        context = _process_context()
        names = [e["name"] for e in self._endpoints]
        log = _log_target()
        with ExitStack() as stack:
            life = stack.enter_context(lifeline(context))
            self.hub = stack.enter_context(shared_hub(self._endpoints, self._max_cost, context=context, life=life))
            events = context.Queue()
            drain = threading.Thread(target=self._drain, args=(events,), name="hopt-progress", daemon=True)
            drain.start()
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=context, initializer=worker_init,
                initargs=(self.hub, names, life, events, dict(os.environ), log))
            try:
                yield self
            except BaseException:
                # Interrupted (Ctrl-C) or failed: do not wait for the units still running; the workers
                # exit when the lifeline closes, at the end of this block.
                self._pool.shutdown(wait=False, cancel_futures=True)
                raise
            else:
                self._pool.shutdown(wait=True)
            finally:
                events.put(None)
                drain.join(10)
                events.close()

    def _drain(self, events: Any) -> None:
        while True:
            item = events.get()
            if item is None:
                return
            label, event = item
            sink = self._progress.get(label)
            if sink is not None:
                sink(event)

    def fits(self, unit: Unit, running: dict[str, int]) -> bool:
        if sum(running.values()) >= self._workers:
            return False
        return unit.kind != "optimize" or running.get("optimize", 0) < self._cells

    def submit(self, unit: Unit, progress: Progress) -> Future[dict[str, Any]]:
        assert self._pool is not None
        self._progress[unit.cell] = progress
        return self._pool.submit(in_worker, self._run_unit, self._config_json, unit.payload, unit.cell)

    def stop(self, reason: str) -> None:
        if self.hub is not None:
            self.hub.close(reason)


class RayBackend:
    """Every unit a Ray task; the hub a Ray actor, so the limits hold on every worker and machine."""

    def __init__(self, *, run_task: UnitRunner, config_json: str, address: str | None, num_cpus: int | None,
                 endpoints: list[dict[str, Any]], max_cost: float | None) -> None:
        self._run_task = run_task
        self._config_json = config_json
        self._address = address
        self._num_cpus = num_cpus
        self._endpoints = endpoints
        self._max_cost = max_cost
        self.hub: RayHub | None = None
        self._capacity = 1
        self._task: Any = None

    @contextmanager
    def running(self) -> Iterator[RayBackend]:
        from helm_optimizer.errors import HelmOptimizerError

        try:
            import ray
        except ImportError as exc:
            raise HelmOptimizerError(
                "The ray executor needs Ray: pip install 'helm-optimizer[ray]' (or pip install ray)."
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": self._address} if self._address else {
                "num_cpus": self._num_cpus, "include_dashboard": False}
            ray.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self._capacity = max(1, int(resources.get("CPU", 1)))
        self.hub = ray_hub(self._endpoints, self._max_cost)
        self._task = ray.remote(num_cpus=1, max_retries=0)(self._run_task)
        names = [e["name"] for e in self._endpoints]
        try:
            with use_hub(self.hub, names):
                yield self
        finally:
            ray.kill(self.hub.handle)
            self.hub = None

    def fits(self, unit: Unit, running: dict[str, int]) -> bool:
        return sum(running.values()) < self._capacity

    def submit(self, unit: Unit, progress: Progress) -> Future[dict[str, Any]]:
        assert self.hub is not None
        names = [e["name"] for e in self._endpoints]
        ref = self._task.remote(self._config_json, unit.payload, self.hub.handle, names)
        future: Future[dict[str, Any]] = ref.future()
        return future

    def stop(self, reason: str) -> None:
        if self.hub is not None:
            self.hub.close(reason)


# ----------------------------------------------------------------------------------------------
# The scheduling loop
# ----------------------------------------------------------------------------------------------
@dataclass
class _Cell:
    units: list[str]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float | None = None


def _cell_summary(kind: str, summaries: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    if kind == "optimize":
        return summaries[0]
    failed = [s for s in summaries if s.get("status") == "failed"]
    statuses = {s.get("status") for s in summaries}
    out: dict[str, Any] = {
        "status": "failed" if failed else ("skipped" if statuses == {"skipped"} else "done"),
        "lm_calls": sum(int(s.get("lm_calls") or 0) for s in summaries),
        "retries": sum(int(s.get("retries") or 0) for s in summaries),
        "records": sum(int(s.get("records") or 0) for s in summaries),
        "wall_time_s": wall,
    }
    ran = [s for s in summaries if "prompt_tokens" in s]  # the units that made calls now
    if ran:
        costs = [s.get("cost") for s in ran]
        out |= {"prompt_tokens": sum(int(s.get("prompt_tokens") or 0) for s in ran),
                "completion_tokens": sum(int(s.get("completion_tokens") or 0) for s in ran),
                "cost": None if None in costs else round(sum(float(c) for c in costs if c is not None), 6)}
    # Each method's score, as one evaluation of every method reports it (the display's result line).
    out["means"] = {k: v for s in summaries for k, v in (s.get("means") or {}).items()}
    out["metric"] = next((s["metric"] for s in summaries if s.get("metric")), None)
    if failed:
        out["error"] = "; ".join(dict.fromkeys(str(s.get("error")) for s in failed))
    return out


def _failure(exc: BaseException) -> str:
    """One line for a unit that raised: our errors speak for themselves, others get their type."""
    from helm_optimizer.errors import HelmOptimizerError

    cause = getattr(exc, "cause", None) or exc  # a Ray task error wraps the exception
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    return first if isinstance(cause, HelmOptimizerError) else f"{type(cause).__name__}: {first}"


def run_units(units: list[Unit], backend: Backend, *, on_start: Progress, on_done: Progress,
              seconds_per_call: dict[str, float] | None = None) -> None:
    """Run ``units`` on ``backend`` as their inputs become ready; ``on_done`` once per finished cell.

    ``seconds_per_call``: an endpoint's expected seconds per call of its capacity (latency ÷
    concurrency), to run the units of the endpoint with the most work left first.
    """
    by_key = {u.key: u for u in units}
    cells: dict[str, _Cell] = {}
    for unit in units:
        cells.setdefault(unit.cell, _Cell(units=[])).units.append(unit.key)
    pace = seconds_per_call or {}
    left: dict[str, float] = {}
    for unit in units:
        left[unit.endpoint] = left.get(unit.endpoint, 0.0) + unit.weight * pace.get(unit.endpoint, 1.0)
    outcome: dict[str, dict[str, Any]] = {}
    running: dict[Future[dict[str, Any]], Unit] = {}
    busy: dict[str, int] = {}
    optimizing: dict[str, int] = {}  # optimization units not finished, per endpoint
    evaluating: dict[str, int] = {}  # evaluation units running, per endpoint
    for unit in units:
        if unit.kind == "optimize":
            optimizing[unit.endpoint] = optimizing.get(unit.endpoint, 0) + 1
    lock = threading.Lock()

    def finish(unit: Unit, summary: dict[str, Any]) -> None:
        outcome[unit.key] = summary
        if unit.kind == "optimize":
            optimizing[unit.endpoint] -= 1
        left[unit.endpoint] -= unit.weight * pace.get(unit.endpoint, 1.0)
        cell = cells[unit.cell]
        cell.summaries[unit.key] = summary
        if len(cell.summaries) == len(cell.units):
            wall = time.perf_counter() - cell.started if cell.started is not None else 0.0
            ordered = [cell.summaries[k] for k in cell.units]
            on_done({"cell": unit.cell, **_cell_summary(unit.kind, ordered, wall)})

    def ready(unit: Unit) -> bool | None:
        """True: may start; False: waits; None: cannot run (an input failed)."""
        for need in unit.needs:
            if need not in outcome:
                return False
            if outcome[need].get("status") == "failed":
                return None
        return True

    pending = list(units)
    stopped: str | None = None
    try:
        while pending or running:
            settled = len(outcome)
            hub_reason = getattr(backend, "hub", None)
            reason = stopped or (hub_reason.exhausted() if hub_reason is not None else None)
            startable: list[Unit] = []
            for unit in list(pending):
                state = ready(unit)
                if state is None:
                    pending.remove(unit)
                    blocker = next(n for n in unit.needs if outcome[n].get("status") == "failed")
                    finish(unit, {"status": "failed", "error": f"not evaluated: {by_key[blocker].cell} failed"})
                elif reason is not None and state:
                    pending.remove(unit)
                    finish(unit, {"status": "failed", "error": f"not started: {reason}"})
                elif state:
                    startable.append(unit)
            startable.sort(key=lambda u: (-left.get(u.endpoint, 0.0), -u.weight))  # most work left first
            for unit in startable:
                if not backend.fits(unit, busy):
                    continue
                if unit.kind == "evaluate" and optimizing.get(unit.endpoint) and \
                        evaluating.get(unit.endpoint, 0) >= _EVALUATIONS_BESIDE_OPTIMIZATIONS:
                    continue
                evaluating[unit.endpoint] = evaluating.get(unit.endpoint, 0) + (unit.kind == "evaluate")
                busy[unit.kind] = busy.get(unit.kind, 0) + 1
                pending.remove(unit)
                cell = cells[unit.cell]
                if cell.started is None:
                    cell.started = time.perf_counter()
                label = unit.cell

                def progress(event: dict[str, Any], label: str = label) -> None:
                    with lock:
                        on_start({"cell": label, **event})

                method = unit.payload.get("method")
                on_start({"cell": label, **({"stage": f"evaluating {method}"} if unit.kind == "evaluate" else {})})
                running[backend.submit(unit, progress)] = unit
            if not running:
                if len(outcome) > settled:
                    continue  # units failed for want of inputs: look at what that unblocks
                for unit in pending:  # nothing runs and nothing can start: inputs that never come
                    finish(unit, {"status": "failed", "error": "not started: its inputs were never produced"})
                pending.clear()
                break
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                unit = running.pop(future)
                busy[unit.kind] -= 1
                if unit.kind == "evaluate":
                    evaluating[unit.endpoint] -= 1
                try:
                    summary = future.result()
                except Exception as exc:
                    summary = {"status": "failed", "error": _failure(exc)}
                finish(unit, summary)
    except BaseException:
        stopped = "the sweep was interrupted"
        backend.stop(stopped)
        raise
