"""The per-endpoint limiter: concurrency, per-minute windows, 429 pauses, cache-hit refunds, the budget."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from helm_optimizer.errors import BudgetExceededError
from helm_optimizer.serving import limiter
from helm_optimizer.serving.limiter import Gate, LimiterHub


def _hub(**spec: Any) -> LimiterHub:
    return LimiterHub([{"name": "m", "max_concurrency": 3, **spec}], max_cost=spec.pop("max_cost", None))


def _wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        event.wait(0.01)
    return False


def test_no_more_calls_in_flight_than_the_cap() -> None:
    hub = _hub()
    gate = Gate(hub, "m")
    entered: list[int] = []
    go = threading.Event()

    def worker(i: int) -> None:
        with gate.slot(10) as permit:
            entered.append(i)
            go.wait(10)
            permit.done(10, 1)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    assert _wait_until(lambda: len(entered) == 3)
    assert not _wait_until(lambda: len(entered) > 3, timeout=0.3)  # the other five wait for a slot
    go.set()
    for thread in threads:
        thread.join(10)
    stats = hub.stats()["endpoints"]["m"]
    assert len(entered) == 8 and stats["max_in_flight"] == 3 and stats["calls"] == 8
    assert stats["prompt_tokens"] == 80 and stats["completion_tokens"] == 8


def test_a_429_pauses_every_caller_and_halves_the_concurrency() -> None:
    hub = _hub(max_concurrency=8)
    gate = Gate(hub, "m")
    permit = gate.enter()
    permit.throttled(0.4)
    started = time.monotonic()
    gate.enter().done()
    assert time.monotonic() - started >= 0.35
    stats = hub.stats()["endpoints"]["m"]
    assert stats["throttled"] == 1 and stats["concurrency_now"] == 4 and stats["backoff_s"] == pytest.approx(0.4, 0.1)
    # a burst of 429s answered during one pause halves the concurrency once
    for _ in range(3):
        hub.throttled("m", 0.3)
    assert hub.stats()["endpoints"]["m"]["concurrency_now"] == 2
    # successful calls give the slots back, one per window of successes
    for _ in range(40):
        gate.enter().done(1, 1)
    assert hub.stats()["endpoints"]["m"]["concurrency_now"] == 8


def test_a_429_without_retry_after_backs_off_exponentially() -> None:
    hub = _hub()
    assert [hub.throttled("m") for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]


def test_requests_per_minute_and_cache_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limiter, "_WINDOW_S", 0.5)
    hub = _hub(requests_per_minute=2)
    gate = Gate(hub, "m")
    gate.enter().done(cache_hit=True)  # a cache hit is no request
    started = time.monotonic()
    gate.enter().done(1, 1)
    gate.enter().done(1, 1)
    assert time.monotonic() - started < 0.4
    gate.enter().done(1, 1)  # the third request in the window waits for the first to leave it
    assert time.monotonic() - started >= 0.45
    stats = hub.stats()["endpoints"]["m"]
    assert stats["calls"] == 3 and stats["cache_hits"] == 1 and stats["waited_s"] >= 0.4


def test_tokens_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limiter, "_WINDOW_S", 0.5)
    hub = _hub(tokens_per_minute=100)
    gate = Gate(hub, "m")
    started = time.monotonic()
    gate.enter(60).done(60, 30)  # 90 tokens used in the window
    gate.enter(20).done(5, 5)    # 100: still fits
    gate.enter(20).done(5, 5)    # over: waits until the first call leaves the window
    assert time.monotonic() - started >= 0.45


def test_budget_refuses_the_call_that_could_exceed_it_and_then_every_call() -> None:
    hub = LimiterHub([{"name": "m", "max_concurrency": 4, "input_price": 0.001, "output_price": 0.002,
                       "completion_reserve": 10}], max_cost=0.1)
    gate = Gate(hub, "m")
    made = 0
    with pytest.raises(BudgetExceededError, match="max_cost"):
        while True:  # worst case 10 * 0.001 + 10 * 0.002 = 0.03 a call; actual 10 * 0.001 + 5 * 0.002 = 0.02
            gate.enter(10).done(10, 5)
            made += 1
    # 4 calls spend 0.08; a fifth could reach 0.11 > 0.1, so it is not made
    assert made == 4 and hub.stats()["spent"] == pytest.approx(0.08)
    assert hub.exhausted() is not None
    with pytest.raises(BudgetExceededError):
        gate.check()
    assert hub.stats()["spent"] <= 0.1


def test_close_wakes_waiting_callers_with_the_reason() -> None:
    hub = _hub(max_concurrency=1)
    gate = Gate(hub, "m")
    held = gate.enter()
    errors: list[str] = []

    def waiter() -> None:
        try:
            gate.enter()
        except BudgetExceededError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not _wait_until(lambda: bool(errors), timeout=0.2)
    hub.close("the sweep was interrupted")
    thread.join(5)
    held.done()
    assert errors and "interrupted" in errors[0]


def test_gates_exist_only_for_the_hubs_endpoints() -> None:
    hub = _hub()
    assert limiter.gate_for("m") is None
    with limiter.use_hub(hub, ["m"]):
        assert limiter.gate_for("m") is not None and limiter.gate_for("other") is None
    assert limiter.gate_for("m") is None


def test_optimization_calls_get_free_slots_before_evaluation_calls() -> None:
    hub = _hub(max_concurrency=1)
    held = Gate(hub, "m").enter()
    order: list[str] = []

    def call(name: str, priority: int) -> None:
        with Gate(hub, "m", priority).slot() as permit:
            order.append(name)
            permit.done(1, 1)

    evaluation = threading.Thread(target=call, args=("evaluation", 1))
    evaluation.start()
    assert _wait_until(lambda: hub.stats()["endpoints"]["m"]["waiting"] == {"1": 1})
    optimization = threading.Thread(target=call, args=("optimization", 0))
    optimization.start()
    assert _wait_until(lambda: hub.stats()["endpoints"]["m"]["waiting"] == {"0": 1, "1": 1})
    held.done(1, 1)
    for thread in (evaluation, optimization):
        thread.join(10)
    assert order == ["optimization", "evaluation"]  # the later, higher-priority caller went first
