"""LM calls: one retry policy (tenacity) for sync and async calls, counted by the meter; slots shared by both."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from helm_optimizer._lm_calls import CallSlots, retry_delay
from helm_optimizer.config import LMConfig
from helm_optimizer.lm import UsageMeter, adapter_for, build_lm
from helm_optimizer.serving.fake import FakeOpenAIServer

MESSAGES = [{"role": "user", "content": "What is 2 + 3 = ?"}]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry at once (the policy's waits are 1, 2, 4 ... s)."""
    import helm_optimizer._lm_calls as calls

    monkeypatch.setattr(calls, "retry_delay", lambda exc, retries_so_far: 0.0)


def test_retry_delay_follows_the_providers_hint_then_doubles_up_to_a_minute() -> None:
    class Hinted(Exception):
        retry_after = 3.5

    assert retry_delay(Hinted(), 0) == 3.5
    assert [retry_delay(RuntimeError(), n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest.mark.parametrize("way", ["sync", "async"])
def test_transient_failures_are_retried_and_counted_by_the_meter(way: str, no_backoff: None) -> None:
    with FakeOpenAIServer(failure_rate=0.6, failure_kinds=("429", "500"), max_failures_per_request=2) as server:
        meter = UsageMeter()
        lm = build_lm(LMConfig(model="openai/fake-retry", api_base=server.api_base, num_retries=2), cache=False,
                      meter=meter)
        for i in range(6):
            messages = [{"role": "user", "content": f"What is {i} + 3 = ?"}]
            outputs = lm(messages=messages) if way == "sync" else asyncio.run(lm.acall(messages=messages))
            assert outputs == [str(i + 3)]
        injected = server.stats()["injected_failures"]
    assert injected > 0
    assert meter.retries == injected and meter.failed_calls == 0


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_call_failing_past_its_retries_is_counted_once_and_raised(way: str, no_backoff: None) -> None:
    with FakeOpenAIServer(failure_rate=1.0, failure_kinds=("500",), max_failures_per_request=5) as server:
        meter = UsageMeter()
        lm = build_lm(LMConfig(model="openai/fake-retry", api_base=server.api_base, num_retries=2), cache=False,
                      meter=meter)
        with pytest.raises(Exception, match=r"(?i)server"):
            lm(messages=MESSAGES) if way == "sync" else asyncio.run(lm.acall(messages=MESSAGES))
        assert server.stats()["injected_failures"] == 3  # the first attempt and 2 retries
    assert meter.retries == 2 and meter.failed_calls == 1 and meter.last_error


def test_async_calls_hold_the_meters_slots_too() -> None:
    """--num-threads 1: three concurrent async calls run one after another."""
    latency = 0.2
    with FakeOpenAIServer(latency=latency) as server:
        meter = UsageMeter(concurrency=1)
        lm = build_lm(LMConfig(model="openai/fake-slots", api_base=server.api_base), cache=False, meter=meter)

        async def three() -> list[Any]:
            return await asyncio.gather(*(lm.acall(messages=[{"role": "user", "content": f"What is {i} + 1 = ?"}])
                                          for i in range(3)))

        started = time.monotonic()
        assert asyncio.run(three()) == [["1"], ["2"], ["3"]]
        assert time.monotonic() - started >= 3 * latency


def test_call_slots_bound_threads_and_coroutines_together() -> None:
    slots = CallSlots(2)
    lock = threading.Lock()
    inside = [0]
    peak = [0]
    release = threading.Event()

    def enter() -> None:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])

    def leave() -> None:
        with lock:
            inside[0] -= 1

    def thread_holder() -> None:
        with slots.held():
            enter()
            release.wait(5)
            leave()

    async def coroutine_holders() -> None:
        async def one() -> None:
            async with slots.held_async():
                enter()
                await asyncio.sleep(0.01)
                leave()

        await asyncio.gather(*(one() for _ in range(5)))

    threads = [threading.Thread(target=thread_holder) for _ in range(2)]
    for thread in threads:
        thread.start()
    while inside[0] < 2:  # both threads hold a slot: the coroutines must wait for them
        time.sleep(0.005)
    loop_thread = threading.Thread(target=lambda: asyncio.run(coroutine_holders()))
    loop_thread.start()
    time.sleep(0.05)
    assert inside[0] == 2 and loop_thread.is_alive()
    release.set()
    for thread in [*threads, loop_thread]:
        thread.join(10)
    assert peak[0] == 2 and inside[0] == 0


def test_a_cancelled_async_waiter_gives_its_slot_back() -> None:
    slots = CallSlots(1)

    async def scenario() -> bool:
        async with slots.held_async():
            waiter = asyncio.create_task(_hold(slots))
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with slots.held_async():  # would wait forever if the cancelled waiter kept the slot
            return True

    assert asyncio.run(asyncio.wait_for(scenario(), 5))


async def _hold(slots: CallSlots) -> None:
    async with slots.held_async():
        await asyncio.sleep(10)


def test_structured_output_models_get_dspys_json_schema_response_format() -> None:
    import dspy

    with FakeOpenAIServer() as server:
        cfg = LMConfig(model="openai/fake-json", api_base=server.api_base, structured_output=True)
        lm = build_lm(cfg, cache=False)
        with dspy.context(lm=lm, adapter=adapter_for(cfg)):
            prediction = dspy.Predict("inputs -> output")(inputs="What is 20 + 22 = ?")
    assert prediction.output == "42"
    response_format = lm.history[-1]["kwargs"]["response_format"]
    assert isinstance(response_format, type)  # a pydantic model: litellm sends it as a json_schema
    assert set(response_format.model_json_schema()["properties"]) == {"output"}
