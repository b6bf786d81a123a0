"""The scheduling loop with an in-process backend: inputs first, failures propagate, stopping is clean."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from helm_optimizer.sweep.scheduler import Unit, run_units


class ThreadBackend:
    """Runs units on threads; each unit's body is looked up in ``bodies`` by key."""

    def __init__(self, bodies: dict[str, Any], workers: int = 8) -> None:
        self.bodies = bodies
        self.pool = ThreadPoolExecutor(workers)
        self.workers = workers
        self.started: list[str] = []
        self.stopped: str | None = None
        self.hub = None
        self._lock = threading.Lock()

    def fits(self, unit: Unit, running: dict[str, int]) -> bool:
        return sum(running.values()) < self.workers

    def submit(self, unit: Unit, progress: Any) -> Future[dict[str, Any]]:
        with self._lock:
            self.started.append(unit.key)
        return self.pool.submit(self.bodies[unit.key])

    def stop(self, reason: str) -> None:
        self.stopped = reason


def _units() -> list[Unit]:
    return [
        Unit("opt", "optimize s·m·O", "optimize", "m", {}, weight=10),
        Unit("eval-base", "evaluate s·m", "evaluate", "m", {"method": "baseline"}),
        Unit("eval-O", "evaluate s·m", "evaluate", "m", {"method": "O"}, needs=("opt",)),
    ]


def test_baseline_runs_while_the_optimizer_does_and_the_agent_after_it() -> None:
    optimizer_running = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def optimize() -> dict[str, Any]:
        optimizer_running.set()
        release.wait(10)
        order.append("opt done")
        return {"status": "done", "lm_calls": 5}

    def baseline() -> dict[str, Any]:
        assert optimizer_running.wait(10)
        order.append("baseline while optimizing")
        release.set()
        return {"status": "done", "lm_calls": 2, "records": 1, "means": {"baseline": 0.25}, "metric": "exact_match"}

    def agent() -> dict[str, Any]:
        order.append("agent evaluated")
        return {"status": "done", "lm_calls": 3, "records": 1, "means": {"O": 0.5}, "metric": "exact_match"}

    backend = ThreadBackend({"opt": optimize, "eval-base": baseline, "eval-O": agent})
    done: list[dict[str, Any]] = []
    run_units(_units(), backend, on_start=lambda e: None, on_done=done.append)
    assert order == ["baseline while optimizing", "opt done", "agent evaluated"]
    by_cell = {d["cell"]: d for d in done}
    assert by_cell["optimize s·m·O"]["lm_calls"] == 5
    # the cell's summary: both methods' calls and scores, as one evaluation of both methods reports them
    assert by_cell["evaluate s·m"] == {"cell": "evaluate s·m", "status": "done", "lm_calls": 5, "retries": 0,
                                       "records": 2, "wall_time_s": by_cell["evaluate s·m"]["wall_time_s"],
                                       "means": {"baseline": 0.25, "O": 0.5}, "metric": "exact_match"}


def test_a_failed_optimization_fails_only_its_agents_evaluation() -> None:
    def fail() -> dict[str, Any]:
        raise RuntimeError("endpoint gone")

    backend = ThreadBackend({"opt": fail, "eval-base": lambda: {"status": "done", "records": 1},
                             "eval-O": lambda: {"status": "done"}})
    done: list[dict[str, Any]] = []
    run_units(_units(), backend, on_start=lambda e: None, on_done=done.append)
    by_cell = {d["cell"]: d for d in done}
    assert by_cell["optimize s·m·O"] == {"cell": "optimize s·m·O", "status": "failed",
                                         "error": "RuntimeError: endpoint gone"}
    assert "eval-O" not in backend.started and "eval-base" in backend.started
    evaluation = by_cell["evaluate s·m"]
    assert evaluation["status"] == "failed" and evaluation["records"] == 1
    assert "not evaluated: optimize s·m·O failed" in evaluation["error"]


def test_the_endpoint_with_the_most_work_left_goes_first() -> None:
    units = [Unit(f"{m}{i}", f"optimize {m}{i}", "optimize", m, {}, weight=1) for m in "ab" for i in range(3)]
    backend = ThreadBackend({u.key: (lambda: {"status": "done"}) for u in units}, workers=1)
    run_units(units, backend, on_start=lambda e: None, on_done=lambda e: None, seconds_per_call={"a": 0.1, "b": 1.0})
    assert backend.started[0].startswith("b")  # b: 3 calls x 1 s left, a: 3 x 0.1 s


def test_an_interrupt_stops_the_backend_and_is_raised() -> None:
    class Interrupting(ThreadBackend):
        def submit(self, unit: Unit, progress: Any) -> Future[dict[str, Any]]:
            raise KeyboardInterrupt

    backend = Interrupting({})
    try:
        run_units(_units(), backend, on_start=lambda e: None, on_done=lambda e: None)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt must propagate")
    assert backend.stopped == "the sweep was interrupted"
