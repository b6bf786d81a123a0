"""What counts as a usable reply, when an endpoint stopped answering, and a budget taken before each call."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from helm_optimizer.config import LMConfig, redact_url, url_has_credentials
from helm_optimizer.errors import BudgetExceededError, ModelError
from helm_optimizer.lm import UsageMeter
from helm_optimizer.replies import (
    Liveness,
    UnusableReplyError,
    completion_problem,
    is_no_answer,
    is_unusable_reply,
    response_problem,
)


def _chat(*messages: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"choices": [{"index": i, "finish_reason": finish, "message": m} for i, m in enumerate(messages)]}


@pytest.mark.parametrize(("body", "problem"), [
    (_chat({"role": "assistant", "content": "B"}), None),
    (_chat({"role": "assistant", "content": ""}), None),  # an empty answer is the model's answer
    (_chat({"role": "assistant", "content": None}, finish="length"), None),  # cut short: still its answer
    (_chat({"role": "assistant", "content": None}, finish="content_filter"), None),
    (_chat({"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]}), None),
    ({"choices": [{"index": 0, "finish_reason": "stop", "text": "B"}]}, None),  # a text completion
    ({"choices": []}, "no choices"),
    ({"id": "x"}, "no choices"),
    (_chat({"role": "assistant"}), "no content"),
    (_chat({"role": "assistant", "content": None}), "no content"),
    ({"choices": [{"index": 0, "finish_reason": "stop"}]}, "neither a message nor a text"),
    ({"choices": ["B"]}, "not an object"),
    ("<html><body>Sign in</body></html>", "not a JSON object"),
])
def test_completion_problem(body: Any, problem: str | None) -> None:
    found = completion_problem(body)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_response_problem_reads_the_provider_body_kept_in_dspy_history() -> None:
    native = SimpleNamespace(provider_data={"choices": []})  # DSPy's native engine keeps the JSON body there
    assert response_problem(native) == "the reply has no choices"
    assert response_problem((SimpleNamespace(provider_data=_chat({"role": "assistant", "content": "A"})),)) is None
    assert response_problem(SimpleNamespace(text="A")) is None  # a shape without the body: judged usable
    assert response_problem(_chat({"role": "assistant"})) == "the reply's message has no content"
    assert response_problem(()) == "the reply has no choices"


def test_error_classes() -> None:
    class LMProviderError(Exception):
        status = 200  # DSPy's error for a 200 whose body is not JSON (an HTML page)

    class LMTimeoutError(Exception):
        pass

    assert is_unusable_reply(UnusableReplyError("x")) and is_unusable_reply(LMProviderError())
    assert not is_unusable_reply(LMTimeoutError()) and is_no_answer(LMTimeoutError())
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = LMTimeoutError()
    assert is_no_answer(wrapped) and not is_no_answer(ValueError())


def test_a_call_without_any_reply_while_no_other_call_was_answered_stops_the_endpoint() -> None:
    live = Liveness("http://127.0.0.1:1/v1")
    live.timeout = 2.0
    first = live.begin()
    second = live.begin()
    live.end(second)  # answered while the first call was waiting
    live.end(first, TimeoutError("read timed out"))
    assert live.stopped is None  # the server answered meanwhile: one slow call is no verdict
    third = live.begin()
    live.end(third, TimeoutError("read timed out"))
    assert live.stopped is not None and "stopped answering" in live.stopped and "2 s per attempt" in live.stopped
    with pytest.raises(ModelError, match="--timeout"):
        live.begin()
    live.reset()
    live.end(live.begin())


def test_three_calls_in_a_row_with_only_unusable_replies_stop_the_endpoint() -> None:
    live = Liveness("http://gateway/v1")
    for _ in range(Liveness.UNUSABLE_STREAK - 1):
        live.end(live.begin(), UnusableReplyError("HTTP 200 without a usable answer: the reply has no choices"))
    assert live.stopped is None
    live.end(live.begin())  # a usable answer breaks the streak
    for _ in range(Liveness.UNUSABLE_STREAK - 1):
        live.end(live.begin(), UnusableReplyError("no choices"))
    assert live.stopped is None
    live.end(live.begin(), UnusableReplyError("no choices"))
    assert live.stopped is not None and "without a usable completion" in live.stopped and "--api-base" in live.stopped
    other = Liveness("x")
    other.end(other.begin(), ValueError("HTTP 400: bad request"))  # the server's own error: it is there
    assert other.stopped is None


def test_waiting_reports_calls_in_flight() -> None:
    live = Liveness("e")
    assert live.waiting() == (0, 0.0)
    ticket = live.begin()
    count, age = live.waiting()
    assert count == 1 and age >= 0.0
    live.end(ticket)
    assert live.waiting() == (0, 0.0)


def test_max_calls_is_reserved_before_each_call_and_never_exceeded() -> None:
    meter = UsageMeter(max_calls=5)
    sent = 0
    hits = 0
    lock = threading.Lock()
    gate = threading.Barrier(8)

    def worker(index: int) -> None:
        nonlocal sent, hits
        gate.wait()
        for call in range(4):
            try:
                with meter.reserve():
                    cached = (index + call) % 3 == 0  # a cache hit: no provider call, no usage reported
                    with lock:
                        if cached:
                            hits += 1
                        else:
                            sent += 1
                    if not cached:
                        meter.add_usage("m", {"prompt_tokens": 1, "completion_tokens": 1})
            except BudgetExceededError:
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sent == meter.calls == 5  # exactly the budget: not one call more, none lost to cache hits
    assert hits > 0 and meter.reserved == 0
    with pytest.raises(BudgetExceededError, match="max-calls 5"):
        meter.check()


@pytest.mark.parametrize(("url", "has", "shown"), [
    ("http://user:sk-abc@127.0.0.1:8000/v1", True, "http://***@127.0.0.1:8000/v1"),
    ("https://sk-abc@gateway.example/v1", True, "https://***@gateway.example/v1"),
    ("http://u:p@[::1]:80/x?q=1", True, "http://***@[::1]:80/x?q=1"),
    ("http://127.0.0.1:8000/v1", False, "http://127.0.0.1:8000/v1"),
    ("http://[::1]:8000/v1", False, "http://[::1]:8000/v1"),
])
def test_credentials_in_urls_are_seen_and_redacted(url: str, has: bool, shown: str) -> None:
    assert url_has_credentials(url) is has
    assert redact_url(url) == shown
    assert "sk-abc" not in redact_url(url)


def test_an_api_base_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="carries credentials") as info:
        LMConfig(model="openai/x", api_base="http://user:sk-SECRET-9@127.0.0.1:1/v1")
    errors = info.value.errors()  # type: ignore[attr-defined]
    assert "sk-SECRET-9" not in errors[0]["msg"] and "api_key_env" in errors[0]["msg"]


def test_sweep_timeout_option_sets_every_model_and_prompt_model() -> None:
    from helm_optimizer.sweep.config import SweepConfig, with_timeout

    config = SweepConfig.model_validate({
        "scenarios": ["head_qa"], "optimizers": ["LabeledFewShot"],
        "models": [{"model": "openai/a", "timeout": 300, "prompt_model": {"model": "openai/b"}},
                   {"model": "openai/c"}],
    })
    changed = with_timeout(config, 7.5)
    assert [m.timeout for m in changed.models] == [7.5, 7.5]
    assert changed.models[0].prompt_model is not None and changed.models[0].prompt_model.timeout == 7.5
    assert [m.lm().timeout for m in changed.models] == [7.5, 7.5]
    assert [m.timeout for m in config.models] == [300, 120.0]  # the loaded config is left as it was
