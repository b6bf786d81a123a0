"""Real LM calls through the limiter against the fake server's enforced concurrency cap."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx

from helm_optimizer.config import LMConfig
from helm_optimizer.serving.fake import FakeOpenAIServer
from helm_optimizer.serving.gated_http import GatedTransport, retry_after_seconds
from helm_optimizer.serving.limiter import Gate, LimiterHub, use_hub

MODEL = "openai/limits-model"


def _post(client: httpx.Client, api_base: str, i: int) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": f"{i}+{i}=?"}]}
    return client.post(f"{api_base}/chat/completions", content=json.dumps(body),
                       headers={"Content-Type": "application/json"})


def test_the_fake_server_refuses_requests_beyond_its_cap() -> None:
    with FakeOpenAIServer(max_concurrency=2, latency=0.3, cap_retry_after=1.5) as server, httpx.Client() as client:
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda i: _post(client, server.api_base, i), range(6)))
        refused = [r for r in replies if r.status_code == 429]
        assert refused and all(r.headers["Retry-After"] == "1.5" for r in refused)
        stats = server.stats()
        assert stats["over_cap"] == len(refused) and stats["completions"] == 6 - len(refused)
        assert stats["max_in_flight"] == 2


def test_gated_http_client_keeps_under_the_cap_and_honours_retry_after() -> None:
    with FakeOpenAIServer(max_concurrency=3, latency=0.05) as server:
        hub = LimiterHub([{"name": MODEL, "max_concurrency": 3}])
        with httpx.Client(transport=GatedTransport(Gate(hub, MODEL))) as client, ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(lambda i: _post(client, server.api_base, i), range(36)))
        assert all(r.status_code == 200 for r in replies)
        assert server.stats().get("over_cap", 0) == 0 and server.stats()["max_in_flight"] <= 3
        stats = hub.stats()["endpoints"][MODEL]
        assert stats["calls"] == 36 and stats["prompt_tokens"] > 0 and stats["max_in_flight"] == 3
    # a limiter allowing more than the server takes: the 429s pause the endpoint and are counted
    with FakeOpenAIServer(max_concurrency=1, latency=0.2, cap_retry_after=0.3) as server:
        hub = LimiterHub([{"name": MODEL, "max_concurrency": 4}])
        with httpx.Client(transport=GatedTransport(Gate(hub, MODEL))) as client, ThreadPoolExecutor(4) as pool:
            codes = [r.status_code for r in pool.map(lambda i: _post(client, server.api_base, i), range(4))]
        stats = hub.stats()["endpoints"][MODEL]
        assert codes.count(429) == server.stats()["over_cap"] == stats["throttled"] > 0
        assert stats["backoff_s"] >= 0.3 and stats["concurrency_now"] < 4


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_dspy_calls_wait_for_their_endpoint_and_skip_it_on_cache_hits(tmp_path: Any) -> None:
    import dspy

    from helm_optimizer.lm import UsageMeter, build_lm

    with FakeOpenAIServer(max_concurrency=2, latency=0.1) as server:
        hub = LimiterHub([{"name": MODEL, "max_concurrency": 2}])
        meter = UsageMeter()
        lm = build_lm(LMConfig(model=MODEL, api_base=server.api_base), cache=False, meter=meter)
        errors: list[BaseException] = []

        def ask(i: int) -> None:
            try:
                with dspy.context(lm=lm, usage_tracker=meter, track_usage=True):
                    lm(messages=[{"role": "user", "content": f"{i}*3=?"}])
            except BaseException as exc:
                errors.append(exc)

        with use_hub(hub, [MODEL]):
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        assert not errors
        assert server.stats().get("over_cap", 0) == 0 and server.stats()["completions"] == 10
        stats = hub.stats()["endpoints"][MODEL]
        assert stats["calls"] == 10 and stats["max_in_flight"] == 2
        assert meter.calls == 10  # the meter still sees every call through the probe

        run_id = uuid.uuid4().hex  # a prompt no earlier run has cached
        cached = build_lm(LMConfig(model=MODEL, api_base=server.api_base), cache=True)
        with use_hub(hub, [MODEL]), dspy.context(lm=cached):
            for _ in range(3):
                cached(messages=[{"role": "user", "content": f"cache me ({run_id}): 5*5=?"}])
        stats = hub.stats()["endpoints"][MODEL]
        assert stats["calls"] == 11 and stats["cache_hits"] == 2
