"""The scripted OpenAI-compatible server: deterministic answers, bounded injected faults, counters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from helm_optimizer.serving.fake import FakeOpenAIServer


def _chat(api_base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(api_base + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_answers_from_key_and_arithmetic() -> None:
    with FakeOpenAIServer(answers={"capital of France": "Paris"}) as server:
        _, out = _chat(server.api_base, {"messages": [{"role": "user", "content": "The capital of France?"}]})
        assert out["choices"][0]["message"]["content"] == "Paris"
        assert out["usage"]["total_tokens"] > 0
        # few-shot prompts: the question asked last wins
        _, out = _chat(server.api_base, {"messages": [{"role": "user", "content": "Q: 1+1=?\nA: 2\nQ: 6+6=?\nA:"}]})
        assert out["choices"][0]["message"]["content"] == "12"
        assert server.stats()["completions"] == 2


def test_structured_output_fills_the_schema() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "o", "schema": {
        "type": "object", "properties": {"reasoning": {"type": "string"}, "output": {"type": "string"}}}}}
    with FakeOpenAIServer() as server:
        _, out = _chat(server.api_base, {"messages": [{"role": "user", "content": "3+4=?"}], "response_format": schema})
        payload = json.loads(out["choices"][0]["message"]["content"])
        assert payload["output"] == "7" and payload["reasoning"]


def test_accuracy_is_deterministic_per_question() -> None:
    key = {f"question {i}": "A" for i in range(40)}
    answers = []
    for _ in range(2):
        with FakeOpenAIServer(answers=key, accuracy=0.5, seed=3) as server:
            answers.append([server.answer(f"question {i}") for i in range(40)])
    assert answers[0] == answers[1]
    right = sum(a == "A" for a in answers[0])
    assert 8 <= right <= 32  # about half, never all or none


def test_faults_are_injected_but_bounded_per_request() -> None:
    with FakeOpenAIServer(failure_rate=1.0, failure_kinds=("429", "500"), max_failures_per_request=2) as server:
        body = {"messages": [{"role": "user", "content": "2+2=?"}]}
        codes = [_chat(server.api_base, body)[0] for _ in range(3)]
        assert codes[:2] != [200, 200] and codes[2] == 200
        stats = server.stats()
        assert stats["injected_failures"] == 2 and stats["requests"] == 3 and stats["completions"] == 1


def test_only_loopback() -> None:
    import pytest

    with pytest.raises(ValueError, match="loopback"):
        FakeOpenAIServer(host="0.0.0.0")
