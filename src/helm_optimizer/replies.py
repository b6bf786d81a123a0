"""What counts as an answer from a model server, and whether the server still answers.

* A reply can be an HTTP 200 and still carry no completion: a gateway's HTML page, ``choices: []``,
  a choice whose message has no content. :func:`completion_problem` and :func:`response_problem`
  name what is wrong with such a reply; the callers (DSPy's path in :mod:`helm_optimizer.lm`,
  HELM's in :mod:`helm_optimizer.plugin.clients`) turn it into :class:`UnusableReplyError`, a failed
  attempt that is retried, then counted as a failed call, and never cached.
* :class:`Liveness` tracks the calls in flight to one endpoint and when it last answered. A call
  that got no answer in any of its attempts (timeouts, refused connections) while no other call
  was answered either means the endpoint stopped answering: every later call fails at once with
  one clear :class:`~helm_optimizer.errors.ModelError` instead of waiting out its own timeouts.
  HELM builds its clients itself, so the trackers live in a per-process registry
  (:func:`liveness_for`), reset by each command when it starts.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from helm_optimizer.config import redact_url
from helm_optimizer.errors import ModelError, caused_by

__all__ = [
    "CACHE_KEYS",
    "Liveness",
    "UnusableReplyError",
    "answer_checked",
    "answer_checked_async",
    "check_answering",
    "completion_problem",
    "forget_cached",
    "heartbeat",
    "in_flight",
    "is_no_answer",
    "is_unusable_reply",
    "keep_verdicts",
    "liveness_for",
    "record_reply",
    "reset_all",
    "response_problem",
    "waiting_calls",
]


# The keys a response cache stored during the current LM call attempt (a cache that records them
# appends here), so that a reply found unusable afterwards can be taken out of the cache again.
CACHE_KEYS: ContextVar[list[str] | None] = ContextVar("hopt_cache_keys", default=None)


class UnusableReplyError(Exception):
    """A reply that arrived (HTTP 200) but carries no usable completion; a transient, retried failure."""


def completion_problem(body: Any) -> str | None:
    """What is wrong with an OpenAI-style completion body (chat or text), or None when it is usable.

    An empty string is an answer (the model said nothing); a missing or null content is not,
    unless the model was cut off (``finish_reason: length``) or called a tool.
    """
    if not isinstance(body, Mapping):
        return f"the reply is not a JSON object but {type(body).__name__}"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "the reply has no choices"
    for choice in choices:
        if not isinstance(choice, Mapping):
            return "a choice of the reply is not an object"
        if choice.get("finish_reason") in ("length", "content_filter"):
            continue  # the model's (cut short or filtered) answer, not a broken reply
        if "message" in choice:
            message = choice.get("message")
            if not isinstance(message, Mapping):
                return "a choice of the reply has no message"
            if message.get("content") is None and not message.get("tool_calls"):
                return "the reply's message has no content"
        elif choice.get("text") is None:
            return "a choice of the reply has neither a message nor a text"
    return None


def response_problem(response: Any) -> str | None:
    """What is wrong with a response as DSPy keeps it in an LM's history, or None.

    DSPy's native engine keeps the provider's JSON body in ``provider_data``; LiteLLM's responses
    dump to that body. Responses of other shapes are taken as usable.
    """
    if isinstance(response, list | tuple):
        for item in response:
            problem = response_problem(item)
            if problem:
                return problem
        return None if response else "the reply has no choices"
    if isinstance(response, Mapping):
        return completion_problem(response) if "choices" in response else None
    provider_data = getattr(response, "provider_data", None)
    if isinstance(provider_data, Mapping) and "choices" in provider_data:
        return completion_problem(provider_data)
    if hasattr(response, "choices") and callable(getattr(response, "model_dump", None)):
        try:
            return completion_problem(response.model_dump())
        except Exception:  # a response object that does not dump is judged by its outputs elsewhere
            return None
    return None


def is_unusable_reply(exc: BaseException) -> bool:
    """An :class:`UnusableReplyError`, or DSPy's error for a 200 reply whose body is not JSON (an HTML page)."""
    return caused_by(exc, lambda e: isinstance(e, UnusableReplyError) or getattr(e, "status", None) == 200)


_NO_ANSWER = {"LMTimeoutError", "LMTransportError", "Timeout", "APITimeoutError", "APIConnectionError",
              "ReadTimeout", "ConnectTimeout", "ConnectError", "ConnectionRefusedError", "TimeoutError",
              "ServiceUnavailableError", "RemoteProtocolError"}


def is_no_answer(exc: BaseException) -> bool:
    """A failure in which the server gave no reply at all (timed out, refused or dropped the connection)."""
    return caused_by(exc, lambda e: type(e).__name__ in _NO_ANSWER)


class Liveness:
    """Calls in flight to one endpoint, when it last answered, and whether it stopped answering.

    Two verdicts stop every later call to the endpoint at once, with one clear message:

    * no reply: a call got no reply in any attempt (timeouts, refused connections) and no other
      call got a reply meanwhile;
    * no usable reply: :data:`UNUSABLE_STREAK` calls in a row ended with replies without content
      (every attempt of each) and no call got a usable answer since the first of them started.
    """

    UNUSABLE_STREAK = 3

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.timeout: float | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._in_flight: dict[int, float] = {}
        self._last_reply = float("-inf")
        self._last_usable = float("-inf")
        self._unusable: list[float] = []  # start times of the calls that ended unusable since the last usable one
        self.stopped: str | None = None

    def reset(self) -> None:
        with self._lock:
            self.stopped = None
            self._last_reply = self._last_usable = float("-inf")
            self._unusable.clear()

    def check(self) -> None:
        """Raise the endpoint's :class:`ModelError` once it stopped answering."""
        if self.stopped is not None:
            raise ModelError(self.stopped)

    def begin(self) -> int:
        self.check()
        with self._lock:
            ticket = next(self._ids)
            self._in_flight[ticket] = time.monotonic()
        return ticket

    def end(self, ticket: int, error: BaseException | None = None) -> None:
        """The call ``ticket`` is over: answered (``error`` None), or failed with ``error`` after its retries."""
        now = time.monotonic()
        with self._lock:
            started = self._in_flight.pop(ticket, now)
            if error is None:
                self._last_reply = self._last_usable = now
                self._unusable.clear()
            elif is_no_answer(error):
                if self._last_reply < started:
                    waited = f" after {self.timeout:g} s per attempt" if self.timeout else ""
                    self._stop(f"stopped answering: a call got no reply in any attempt{waited} "
                               f"({type(error).__name__}) and no other call got one meanwhile; check that the "
                               "server is up, or raise --timeout (timeout: in a sweep config)")
            elif is_unusable_reply(error):
                self._last_reply = now
                self._unusable.append(started)
                if len(self._unusable) >= self.UNUSABLE_STREAK and self._last_usable < min(self._unusable):
                    first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
                    self._stop(f"answers without a usable completion: {len(self._unusable)} calls in a row got "
                               f"only such replies ({first}); check --api-base (a login page or a proxy in "
                               "front of the model?) and the model name")
            else:  # the server answered with an error of its own (a 4xx, a refusal): it is there
                self._last_reply = now

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = f"The model server at {self.endpoint} {why}. Finished work is kept."

    def waiting(self) -> tuple[int, float]:
        """How many calls are in flight, and how long the oldest has waited (seconds)."""
        now = time.monotonic()
        with self._lock:
            if not self._in_flight:
                return 0, 0.0
            return len(self._in_flight), now - min(self._in_flight.values())


_REGISTRY: dict[str, Liveness] = {}
_registry_lock = threading.Lock()


def liveness_for(api_base: str | None, model: str = "", *, timeout: float | None = None) -> Liveness:
    """The process's tracker for the endpoint at ``api_base`` (for ``model`` where there is none)."""
    endpoint = redact_url(api_base.rstrip("/")) if api_base else model
    with _registry_lock:
        tracker = _REGISTRY.get(endpoint)
        if tracker is None:
            tracker = _REGISTRY[endpoint] = Liveness(endpoint)
    if timeout is not None:
        tracker.timeout = timeout
    return tracker


def waiting_calls() -> tuple[int, float]:
    """Calls in flight to every endpoint of this process, and the longest wait among them (seconds)."""
    with _registry_lock:
        trackers = list(_REGISTRY.values())
    count, oldest = 0, 0.0
    for tracker in trackers:
        n, age = tracker.waiting()
        count += n
        oldest = max(oldest, age)
    return count, oldest


def check_answering() -> None:
    """Raise the :class:`ModelError` of the first endpoint of this process that stopped answering."""
    with _registry_lock:
        trackers = list(_REGISTRY.values())
    for tracker in trackers:
        tracker.check()


_kept = 0  # > 0 while verdicts outlive single commands (a sweep's cells share them)


def reset_all() -> None:
    """Forget every endpoint's verdict (a new command starts with every server presumed alive).

    Inside :func:`keep_verdicts` this does nothing: once a sweep found a server stopped answering,
    its later cells fail at once instead of each waiting out one call's timeouts again.
    """
    with _registry_lock:
        if _kept:
            return
        trackers = list(_REGISTRY.values())
    for tracker in trackers:
        tracker.reset()


@contextlib.contextmanager
def keep_verdicts() -> Iterator[None]:
    """Keep endpoint verdicts across the commands run inside the block (see :func:`reset_all`)."""
    global _kept
    with _registry_lock:
        _kept += 1
    try:
        yield
    finally:
        with _registry_lock:
            _kept -= 1


# The LM side (helm_optimizer.lm's TrackedLM): each call and each attempt ---------------------
_CALL_ENTRIES: ContextVar[list[dict[str, Any]] | None] = ContextVar("hopt_call_entries", default=None)


@contextlib.contextmanager
def in_flight(lm: Any) -> Iterator[None]:
    """One call of ``lm`` (all its attempts): its share of ``lm.meter``'s budget, and its endpoint's liveness."""
    liveness = liveness_for(lm.kwargs.get("api_base"), lm.model, timeout=lm.kwargs.get("timeout"))
    meter = getattr(lm, "meter", None)
    error: BaseException | None = None
    ticket = None
    try:
        ticket = liveness.begin()  # fails at once when the endpoint stopped answering
        with meter.reserve() if meter is not None else contextlib.nullcontext():
            yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        if ticket is not None:
            liveness.end(ticket, error)
        if liveness.stopped is not None and meter is not None:
            meter.stopped = liveness.stopped  # the run's meter stops it with that one message


def record_reply(entry: dict[str, Any]) -> None:
    """Keep a DSPy history entry for the attempt in progress in this context (see :func:`answer_checked`)."""
    entries = _CALL_ENTRIES.get()
    if entries is not None:
        entries.append(entry)


def answer_checked(lm: Any, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` (one attempt of ``lm``), raising :class:`UnusableReplyError` for a reply without content."""

    def attempt(*args: Any, **kwargs: Any) -> Any:
        entries: list[dict[str, Any]] = []
        keys: list[str] = []
        entries_token, keys_token = _CALL_ENTRIES.set(entries), CACHE_KEYS.set(keys)
        try:
            result = call(*args, **kwargs)
        finally:
            _CALL_ENTRIES.reset(entries_token)
            CACHE_KEYS.reset(keys_token)
        _check_reply(lm, entries, keys)
        return result

    return attempt


def answer_checked_async(lm: Any, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The async form of :func:`answer_checked`."""

    async def attempt(*args: Any, **kwargs: Any) -> Any:
        entries: list[dict[str, Any]] = []
        keys: list[str] = []
        entries_token, keys_token = _CALL_ENTRIES.set(entries), CACHE_KEYS.set(keys)
        try:
            result = await call(*args, **kwargs)
        finally:
            _CALL_ENTRIES.reset(entries_token)
            CACHE_KEYS.reset(keys_token)
        _check_reply(lm, entries, keys)
        return result

    return attempt


def _check_reply(lm: Any, entries: list[dict[str, Any]], keys: list[str]) -> None:
    """Count a usable reply, or take an unusable one out of DSPy's cache and raise :class:`UnusableReplyError`."""
    problem = response_problem(entries[-1].get("response")) if entries else None
    meter = getattr(lm, "meter", None)
    if problem is None:
        if meter is not None:
            meter.add_answer()
        return
    if keys:
        forget_cached(keys)
    raise UnusableReplyError(f"HTTP 200 without a usable answer from {lm.model}: {problem}")


def forget_cached(keys: list[str]) -> None:
    """Take entries out of DSPy's response cache, in memory and on disk."""
    import dspy

    cache = dspy.cache
    for key in keys:
        with contextlib.suppress(Exception):
            cache.memory_cache.pop(key, None)
        disk = cache.disk_cache
        with contextlib.suppress(Exception):
            if isinstance(disk, dict):
                disk.pop(key, None)
            else:
                disk.delete(key)


@contextlib.contextmanager
def heartbeat(emit: Callable[[dict[str, Any]], None], *, interval: float = 5.0,
              threshold: float = 10.0) -> Iterator[None]:
    """While the block runs, report LM calls that have waited ``threshold`` seconds or more.

    Every ``interval`` seconds ``emit`` gets ``{"waiting": "<n> LM call(s) waiting, the longest <s> s"}``
    (``""`` once nothing waits that long), so a server that stopped answering is visible in the
    progress display and the log long before any timeout ends.
    """
    import logging

    log = logging.getLogger(__name__)
    done = threading.Event()

    def beat() -> None:
        shown = ""
        while not done.wait(interval):
            count, oldest = waiting_calls()
            text = f"{count} LM call(s) waiting, the longest {oldest:.0f} s" if count and oldest >= threshold else ""
            if text or shown:
                if text:
                    log.info("%s", text)
                emit({"waiting": text})
                shown = text

    thread = threading.Thread(target=beat, name="hopt-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=interval + 1)
