"""A scripted OpenAI-compatible server for tests and benchmarks.

It speaks ``/v1/chat/completions`` and ``/v1/completions`` well enough for DSPy (chat, JSON and
structured-output adapters) and HELM's ``OpenAIClient`` to use it unchanged, on 127.0.0.1 only.

Answers are deterministic:

* the *answer* for a prompt comes from an answer key (``{question text: gold}``; the first key
  contained in the last user message wins), else from a tiny arithmetic solver, else
  ``default_answer``;
* a fixed fraction of prompts (``accuracy``; ``demo_accuracy`` for requests that carry few-shot
  demos) gets the gold answer, the rest a wrong one; which prompts are right is a hash of the
  prompt and ``seed``, so two runs see the same answers;
* every other output field (reasoning, proposed instructions, summaries) gets short text derived
  from a hash of the request, so DSPy's proposers receive distinct candidates.

Faults are injected per attempt: with probability ``failure_rate`` an attempt is answered with
one of ``failure_kinds`` -- HTTP 429, HTTP 500, a hang of ``hang_seconds``, or an HTTP 200 that
carries no usable answer (``html``: a gateway's HTML page; ``no_choices``: ``choices: []``;
``no_content``: a choice whose message has no content) -- but never more than
``max_failures_per_request`` times for the same request body, so a client that retries always
gets through and a faulty run ends with the same answers as a clean one (set it high, with
``failure_rate`` 1, for a server that never gives a usable answer). ``latency`` adds a fixed delay to every answer.
``garbage_rate`` answers that share of structured (DSPy) prompts with text in no DSPy format, the
same prompts every time, to exercise parse-failure handling. ``bad_output_rate`` answers that
share of prompts (any prompt, the same ones every time) with one of ``bad_output_kinds``: an empty
answer, an overlong one (``finish_reason: length``), garbage text, a well-formed answer whose other
fields (reasoning) carry a lone UTF-16 surrogate (valid JSON, not encodable as UTF-8; a plain
prompt gets it in the answer) or bytes that are not UTF-8 at all (an undecodable body).

``max_concurrency`` plays a rate-limited provider: a completion request that arrives while that many
are being answered gets HTTP 429 with ``Retry-After: <cap_retry_after>`` and counts as
``over_cap``; ``max_in_flight`` is the most answered at once.

Counters (``stats()`` or ``GET /stats``) report requests, completions and injected faults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BAD_OUTPUT_KINDS", "FAILURE_KINDS", "FakeOpenAIServer", "FakeServerConfig", "main"]

logger = logging.getLogger(__name__)

_OUTPUT_FIELDS_RE = re.compile(r"Your output fields are:\n(.*?)(?:\n\n|\Z)", re.S)
_FIELD_LINE_RE = re.compile(r"^\d+\. `(\w+)` \(([^)]*)\)", re.M)
_ARITH_RE = re.compile(r"(-?\d+)\s*([+\-*x×])\s*(-?\d+)\s*=?\s*\?")
_ANSWER_FIELDS = ("output", "answer")


@dataclass
class FakeServerConfig:
    """How the fake server answers. All fields are plain data so the config can cross processes."""

    answers: dict[str, str] = field(default_factory=dict)
    accuracy: float = 1.0
    demo_accuracy: float | None = None
    # Whether a chat request's system message (where DSPy puts the instruction) takes part in deciding
    # which answers are right, so that instructions change scores too.
    instructions_matter: bool = False
    default_answer: str = "A"
    seed: int = 0
    latency: float = 0.0
    failure_rate: float = 0.0
    failure_kinds: tuple[str, ...] = ("429", "500", "timeout")
    max_failures_per_request: int = 2
    hang_seconds: float = 2.0
    garbage_rate: float = 0.0
    bad_output_rate: float = 0.0
    bad_output_kinds: tuple[str, ...] = ("empty", "overlong", "garbage", "surrogate", "invalid_utf8")
    overlong_chars: int = 50_000
    model: str = "fake-model"
    max_concurrency: int | None = None
    cap_retry_after: float = 1.0

    def __post_init__(self) -> None:
        unknown = set(self.bad_output_kinds) - set(BAD_OUTPUT_KINDS)
        if unknown:
            raise ValueError(f"unknown bad_output_kinds {sorted(unknown)}; use {', '.join(BAD_OUTPUT_KINDS)}")
        unknown = set(self.failure_kinds) - set(FAILURE_KINDS)
        if unknown:
            raise ValueError(f"unknown failure_kinds {sorted(unknown)}; use {', '.join(FAILURE_KINDS)}")


FAILURE_KINDS = ("429", "500", "timeout", "html", "no_choices", "no_content")
BAD_OUTPUT_KINDS = ("empty", "overlong", "garbage", "surrogate", "invalid_utf8")
# Placeholder swapped for raw non-UTF-8 bytes after JSON encoding (the body is then not UTF-8).
_INVALID_UTF8_TOKEN = "@@HOPT-INVALID-UTF8@@"
_SURROGATE = "\ud83d"  # half of a UTF-16 pair: JSON can carry it, UTF-8 cannot encode it
# What a captive portal or a misrouted reverse proxy answers with a 200.
_HTML_PAGE = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>"


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _wrong_answer(gold: str) -> str:
    if len(gold) == 1 and gold.isalpha() and gold.isupper():
        return "B" if gold == "A" else "A"
    try:
        number = float(gold)
    except ValueError:
        return f"not {gold}" if gold else "unknown"
    return str(int(number) + 7) if number.is_integer() else f"{number * 10:g}"


class _Brain:
    """Turns a request body into a response body; thread-safe counters."""

    def __init__(self, config: FakeServerConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._attempts: Counter[str] = Counter()
        self._failures_for: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self._in_flight = 0
        # Longest keys first so that "What is 12+1?" wins over "What is 1".
        self._keys = sorted(config.answers, key=len, reverse=True)

    # -- bookkeeping -----------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    def enter(self) -> bool:
        """Start answering a completion request; False (counted as ``over_cap``) when at the cap."""
        cap = self.config.max_concurrency
        with self._lock:
            if cap is not None and self._in_flight >= cap:
                self.counters["over_cap"] += 1
                return False
            self._in_flight += 1
            self.counters["max_in_flight"] = max(self.counters["max_in_flight"], self._in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.counters.clear()
            self._attempts.clear()
            self._failures_for.clear()

    def decide_failure(self, body_key: str) -> str | None:
        """The fault to inject for this attempt, or None to answer normally."""
        cfg = self.config
        if cfg.failure_rate <= 0 or not cfg.failure_kinds:
            return None
        with self._lock:
            self._attempts[body_key] += 1
            if self._failures_for[body_key] >= cfg.max_failures_per_request:
                return None
            if self._rng.random() >= cfg.failure_rate:
                return None
            self._failures_for[body_key] += 1
            kind = cfg.failure_kinds[self._rng.randrange(len(cfg.failure_kinds))]
            self.counters[f"injected_{kind}"] += 1
            self.counters["injected_failures"] += 1
            return kind

    def bad_output_for(self, text: str) -> str | None:
        """The kind of bad output this prompt always gets, or None (a hash of the prompt decides)."""
        cfg = self.config
        if cfg.bad_output_rate <= 0 or not cfg.bad_output_kinds:
            return None
        if _unit(cfg.seed, "bad-output", text) >= cfg.bad_output_rate:
            return None
        kinds = cfg.bad_output_kinds
        kind = kinds[int(_unit(cfg.seed, "bad-kind", text) * len(kinds)) % len(kinds)]
        self.count(f"bad_output_{kind}")
        self.count("bad_outputs")
        return kind

    def bad_text(self, kind: str, text: str) -> str:
        if kind == "empty":
            return ""
        if kind == "overlong":
            unit = f"{self.answer_for(text, with_demos=False)} and so on "
            return (unit * (self.config.overlong_chars // len(unit) + 1))[: self.config.overlong_chars]
        if kind == "garbage":
            return "\u00af\\_(\u30c4)_/\u00af lorem ipsum \x00\x07 }{ [[ ## ]]"
        if kind == "surrogate":
            return f"The answer is {_SURROGATE}"
        return f"The answer is {_INVALID_UTF8_TOKEN}"

    # -- answering -------------------------------------------------------------------------
    def _anchor(self, text: str) -> str | None:
        """The answer-key question asked last in ``text`` (earlier ones are few-shot examples)."""
        best: tuple[int, int, str] | None = None
        for key in self._keys:
            position = text.rfind(key)
            if position >= 0 and (best is None or (position, len(key)) > best[:2]):
                best = (position, len(key), key)
        return None if best is None else best[2]

    def gold_for(self, text: str) -> str:
        anchor = self._anchor(text)
        if anchor is not None:
            return self.config.answers[anchor]
        matches = list(_ARITH_RE.finditer(text))
        match = matches[-1] if matches else None
        if match:
            a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
            value = a + b if op == "+" else a - b if op == "-" else a * b
            return str(value)
        return self.config.default_answer

    def answer_for(self, text: str, *, with_demos: bool, instruction: str = "") -> str:
        gold = self.gold_for(text)
        accuracy = self.config.accuracy
        if with_demos and self.config.demo_accuracy is not None:
            accuracy = self.config.demo_accuracy
        # The decision hashes the question part only, so the same question is right or wrong
        # whatever instruction or demos surround it (unless ``instructions_matter``).
        anchor = self._anchor(text)
        if anchor is None:
            matches = list(_ARITH_RE.finditer(text))
            anchor = matches[-1].group(0) if matches else text
        if self.config.instructions_matter:
            anchor = f"{instruction}\x1f{anchor}"
        correct = _unit(self.config.seed, "correct", anchor) < accuracy
        return gold if correct else _wrong_answer(gold)

    def _filler(self, name: str, annotation: str, seed_text: str) -> Any:
        h = _short_hash(f"{name}\x1f{seed_text}")
        kind = annotation.lower()
        if kind in ("int", "integer"):
            return int(h[:4], 16) % 10
        if kind in ("float", "number"):
            return round(int(h[:4], 16) / 65535, 3)
        if kind in ("bool", "boolean"):
            return int(h[0], 16) % 2 == 0
        if kind.startswith("list") or kind == "array":
            return [f"{name} item {h}"]
        if kind.startswith("dict") or kind == "object":
            return {"note": f"{name} {h}"}
        if name == "reasoning":
            return f"Let me work through this step by step ({h})."
        if "instruction" in name:
            return f"Read the input carefully and answer precisely. Variant {h}."
        return f"{name.replace('_', ' ').capitalize()} {h}."

    def completion_text(self, body: Mapping[str, Any], *, taint: str = "") -> str:
        """The answer to a chat request; ``taint`` is appended to every non-answer text field."""
        messages = body.get("messages") or []
        system = "\n".join(_content_text(m.get("content")) for m in messages if m.get("role") == "system")
        users = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        last_user = users[-1] if users else ""
        with_demos = len(users) > 1 or "[[ ## " in "".join(
            _content_text(m.get("content")) for m in messages if m.get("role") == "assistant"
        )
        fields = self._output_fields(body, system)
        if not fields:
            return self.answer_for(last_user, with_demos=with_demos)
        if self.config.garbage_rate > 0 and _unit(self.config.seed, "garbage", last_user) < self.config.garbage_rate:
            self.count("garbage_answers")
            return "Sorry, I am not sure how to answer that."
        answer_field = next((f for f in _ANSWER_FIELDS if f in fields), None)
        values: dict[str, Any] = {}
        for name, annotation in fields.items():
            if name == answer_field:
                values[name] = self.answer_for(last_user, with_demos=with_demos, instruction=system)
            else:
                values[name] = self._filler(name, annotation, last_user)
                if taint and isinstance(values[name], str):
                    values[name] += taint
        wants_json = bool(body.get("response_format")) or "JSON object" in system
        if wants_json:
            return json.dumps(values)
        parts = [f"[[ ## {name} ## ]]\n{value}" for name, value in values.items()]
        return "\n\n".join([*parts, "[[ ## completed ## ]]"])

    @staticmethod
    def _output_fields(body: Mapping[str, Any], system: str) -> dict[str, str]:
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            props = schema.get("properties") or {}
            return {name: str(spec.get("type", "string")) for name, spec in props.items()}
        match = _OUTPUT_FIELDS_RE.search(system)
        if not match:
            return {}
        return {m.group(1): m.group(2) for m in _FIELD_LINE_RE.finditer(match.group(1))}


def _usage(prompt: str, completion: str) -> dict[str, int]:
    p, c = max(1, len(prompt) // 4), max(1, len(completion) // 4)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _make_handler(brain: _Brain, stop_event: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without TCP_NODELAY the second waits ~40 ms for the
        # client's delayed ACK on a kept-alive connection, adding latency nobody asked for.
        disable_nagle_algorithm = True
        server_version = "helm-optimizer-fake/1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("fake server: " + format, *args)

        def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            if isinstance(payload, str):
                data = payload.encode("utf-8")
            else:
                data = json.dumps(payload).encode("utf-8")  # ensure_ascii: lone surrogates travel as escapes
                data = data.replace(_INVALID_UTF8_TOKEN.encode("ascii"), b"\xff\xfe\xc3\x28")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            elif path in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": brain.config.model, "object": "model"}]})
            elif path == "/stats":
                self._send(200, brain.stats())
            else:
                self._send(404, {"error": {"message": f"no route {path}"}})

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path == "/reset":
                brain.reset()
                self._send(200, {"ok": True})
                return
            if path not in ("/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions"):
                self._send(404, {"error": {"message": f"no route {path}"}})
                return
            brain.count("requests")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                brain.count("bad_requests")
                self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                return
            if not brain.enter():
                wait = f"{brain.config.cap_retry_after:g}"
                self._send(429, {"error": {"message": f"more than {brain.config.max_concurrency} requests at once",
                                           "type": "rate_limit"}}, {"Retry-After": wait})
                return
            try:
                status, payload, headers = self._answer(path, raw, body)
            finally:
                brain.leave()  # before the reply goes out: the client may send the next request at once
            if status is not None:
                extra = dict(headers or {})
                content_type = extra.pop("Content-Type", "application/json")
                self._send(status, payload, extra, content_type=content_type)

        def _answer(self, path: str, raw: bytes, body: Any) -> tuple[int | None, Any, dict[str, str] | None]:
            """The reply to a completion request (status None: no reply, the connection is dropped)."""
            key = hashlib.sha256(raw).hexdigest()
            fault = brain.decide_failure(key)
            if fault == "429":
                refusal = {"error": {"message": "rate limited (injected)", "type": "rate_limit"}}
                return 429, refusal, {"Retry-After": "0"}
            if fault == "500":
                return 500, {"error": {"message": "server error (injected)", "type": "server_error"}}, None
            if fault == "timeout":
                stop_event.wait(brain.config.hang_seconds)
                self.close_connection = True
                return None, None, None
            if fault == "html":
                return 200, _HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"}
            if fault in ("no_choices", "no_content"):
                choices = [] if fault == "no_choices" else [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}, "logprobs": None}]
                return 200, {"id": f"fake-{key[:12]}", "object": "chat.completion", "created": 1_700_000_000,
                             "model": body.get("model") or brain.config.model, "choices": choices,
                             "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}, None
            if brain.config.latency > 0:
                stop_event.wait(brain.config.latency)
            chat = "chat" in path
            if chat:
                messages = body.get("messages") or []
                prompt = "\n".join(_content_text(m.get("content")) for m in messages)
                users = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
                bad = brain.bad_output_for(users[-1] if users else prompt)
                if bad == "surrogate":  # a well-formed answer whose other fields carry the surrogate
                    text = brain.completion_text(body, taint=f" {_SURROGATE}")
                else:
                    text = brain.bad_text(bad, prompt) if bad else brain.completion_text(body)
            else:
                prompt = str(body.get("prompt") or "")
                bad = brain.bad_output_for(prompt)
                text = brain.bad_text(bad, prompt) if bad else brain.answer_for(prompt, with_demos=False)
            finish = "length" if bad == "overlong" else "stop"
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                }
            else:
                choice = {"index": 0, "finish_reason": finish, "text": text, "logprobs": None}
            brain.count("completions")
            created = 1_700_000_000
            return 200, {
                "id": f"fake-{key[:12]}",
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": body.get("model") or brain.config.model,
                "choices": [choice],
                "usage": _usage(prompt, text),
            }, None

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (timed out, killed): nothing to report
        super().handle_error(request, client_address)


class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer(...) as server:``; ``server.api_base`` ends in ``/v1``."""

    def __init__(self, config: FakeServerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **overrides: Any) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("The fake server only listens on the loopback interface.")
        cfg = config or FakeServerConfig()
        for key, value in overrides.items():
            if not hasattr(cfg, key):
                raise TypeError(f"FakeServerConfig has no field {key!r}")
            setattr(cfg, key, value)
        self.config = cfg
        self._brain = _Brain(cfg)
        self._stop = threading.Event()
        self._httpd = _QuietServer((host, port), _make_handler(self._brain, self._stop))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> FakeOpenAIServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        return self._brain.stats()

    @property
    def requests(self) -> int:
        return self.stats().get("requests", 0)

    @property
    def completions(self) -> int:
        return self.stats().get("completions", 0)

    def reset_stats(self) -> None:
        self._brain.reset()

    def set_answers(self, answers: Mapping[str, str]) -> None:
        """Replace the answer key (e.g. with a dataset's ``inputs -> output`` pairs)."""
        self.config.answers = dict(answers)
        self._brain._keys = sorted(self.config.answers, key=len, reverse=True)

    def answer(self, text: str) -> str:
        """The answer the server gives for a prompt (for assertions in tests)."""
        return self._brain.answer_for(text, with_demos=False)


def main(argv: list[str] | None = None, *, ready: Callable[[FakeOpenAIServer], None] | None = None) -> None:
    """``python -m helm_optimizer.serving.fake --port 0``: serve until killed; prints the api base."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--accuracy", type=float, default=1.0)
    parser.add_argument("--demo-accuracy", type=float, default=None)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--failure-kinds", default="429,500,timeout",
                        help="comma-separated: " + ", ".join(FAILURE_KINDS))
    parser.add_argument("--max-failures-per-request", type=int, default=2)
    parser.add_argument("--hang-seconds", type=float, default=2.0)
    parser.add_argument("--garbage-rate", type=float, default=0.0)
    parser.add_argument("--bad-output-rate", type=float, default=0.0)
    parser.add_argument("--bad-output-kinds", default=",".join(BAD_OUTPUT_KINDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--answers", help="JSON file mapping question text to gold answer")
    parser.add_argument("--max-concurrency", type=int, default=None,
                        help="answer 429 to completion requests beyond this many at once")
    parser.add_argument("--cap-retry-after", type=float, default=1.0, help="Retry-After of those 429s (seconds)")
    parser.add_argument("--port-file", help="write the chosen port to this file once listening")
    args = parser.parse_args(argv)
    answers: dict[str, str] = {}
    if args.answers:
        with open(args.answers, encoding="utf-8") as handle:
            answers = json.load(handle)
    def kinds(raw: str) -> tuple[str, ...]:
        return tuple(k.strip() for k in raw.split(",") if k.strip())

    server = FakeOpenAIServer(FakeServerConfig(
        answers=answers, accuracy=args.accuracy, demo_accuracy=args.demo_accuracy, latency=args.latency,
        failure_rate=args.failure_rate, failure_kinds=kinds(args.failure_kinds),
        max_failures_per_request=args.max_failures_per_request, hang_seconds=args.hang_seconds,
        garbage_rate=args.garbage_rate, bad_output_rate=args.bad_output_rate,
        bad_output_kinds=kinds(args.bad_output_kinds), seed=args.seed, max_concurrency=args.max_concurrency,
        cap_retry_after=args.cap_retry_after), port=args.port)
    server.start()
    if args.port_file:
        from pathlib import Path

        from helm_optimizer._io import write_text_atomic

        write_text_atomic(Path(args.port_file), str(server.port))
    if ready is not None:
        ready(server)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
