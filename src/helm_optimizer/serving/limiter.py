"""Per-endpoint limits shared by every LM call of a sweep: concurrency, requests and tokens per minute, 429s.

A sweep declares, per model, what its endpoint takes (:class:`EndpointLimits`). One
:class:`LimiterHub` holds the state of every endpoint of the sweep, in one place: this process, a
multiprocessing manager that the HELM worker processes share (:mod:`helm_optimizer.serving.shared`),
or a Ray actor that every Ray worker shares. Each LM call asks the hub for a slot first and gives it
back after the answer:

* DSPy calls (``helm_optimizer.lm``): every attempt; a cache hit gives its slot back at once and is
  not counted against the per-minute limits;
* HELM's OpenAI-compatible clients (``helm_optimizer.plugin.clients``): every HTTP request, the
  OpenAI SDK's own retries included;
* agents evaluated inside HELM: through the same DSPy LMs.

A 429 answer pauses every caller of that endpoint until its ``Retry-After`` has passed (without one:
1, 2, 4 ... 60 s), and halves the concurrency the endpoint is given; each window of successful calls
then gives one slot back (additive increase, multiplicative decrease). An optional sweep-wide
``max_cost`` is enforced here too: a call whose worst-case price would take the spent and reserved
cost past it is refused before it is sent.

The hub's methods take and return plain data only, so that a manager proxy or a Ray actor handle can
stand in for the hub unchanged.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from helm_optimizer.errors import BudgetExceededError

__all__ = [
    "EndpointLimits",
    "EndpointSpec",
    "Gate",
    "Hub",
    "LimiterHub",
    "Permit",
    "close_gates",
    "gate_for",
    "install_hub",
    "installed_hub",
    "set_priority",
    "use_hub",
]

_WINDOW_S = 60.0
_MAX_BACKOFF_S = 60.0


class EndpointLimits(BaseModel):
    """What one model's endpoint takes, declared per model in the sweep file (``limits:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_concurrency: int | None = Field(
        default=None, ge=1, le=4096, description="LM calls in flight at once, over the whole sweep "
        "(default: the sweep's num_threads)")
    requests_per_minute: float | None = Field(default=None, gt=0, description="requests started per minute")
    tokens_per_minute: float | None = Field(default=None, gt=0, description="prompt + completion tokens per minute")
    latency_s: float | None = Field(default=None, gt=0, description="typical seconds per call (for --dry-run "
                                    "wall time only; default 1 s, or 4 s for an embedded model)")


@dataclass(frozen=True)
class EndpointSpec:
    """Plain-data description of one endpoint for :class:`LimiterHub` (crosses processes)."""

    name: str
    max_concurrency: int
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    input_price: float | None = None  # USD per prompt token; None: unknown
    output_price: float | None = None  # USD per completion token; None: unknown
    completion_reserve: int = 1024  # completion tokens reserved per call against max_cost


@dataclass
class _Endpoint:
    spec: EndpointSpec
    limit: float
    in_flight: int = 0
    pause_until: float = 0.0
    decrease_after: float = 0.0
    consecutive_429: int = 0
    successes: int = 0
    starts: deque[float] = field(default_factory=deque)
    tokens: dict[int, tuple[float, int]] = field(default_factory=dict)
    waiting: dict[int, int] = field(default_factory=dict)  # callers waiting for a slot, by priority
    counters: dict[str, float] = field(default_factory=lambda: {
        "calls": 0, "cache_hits": 0, "throttled": 0, "failed": 0, "backoff_s": 0.0, "waited_s": 0.0,
        "max_in_flight": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})


class LimiterHub:
    """The limits, 429 back-off and budget of every endpoint of a sweep; thread-safe, plain-data methods.

    ``acquire`` blocks until the endpoint may take one more call and returns a ticket (a dict), or a
    one-line reason (a str) when the call must not be made (budget spent, sweep stopping).
    """

    def __init__(self, endpoints: list[dict[str, Any]], max_cost: float | None = None) -> None:
        self._cond = threading.Condition()
        self._endpoints = {}
        for raw in endpoints:
            spec = EndpointSpec(**raw)
            self._endpoints[spec.name] = _Endpoint(spec=spec, limit=float(spec.max_concurrency))
        self._max_cost = max_cost
        self._spent = 0.0
        self._reserved = 0.0
        self._closed: str | None = None
        self._next_ticket = 0

    # -- the calls ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._endpoints)

    def acquire(self, endpoint: str, tokens: int = 0, priority: int = 0) -> dict[str, Any] | str:
        """A slot of ``endpoint`` for a call of ``tokens`` prompt tokens; callers of a lower ``priority``
        number go first (a sweep's optimizations, which evaluations wait for, before its evaluations)."""
        state = self._endpoints[endpoint]
        spec = state.spec
        started = time.monotonic()
        with self._cond:
            state.waiting[priority] = state.waiting.get(priority, 0) + 1
            try:
                while True:
                    if self._closed is not None:
                        return self._closed
                    now = time.monotonic()
                    cost = self._worst_cost(spec, tokens)
                    if self._max_cost is not None and self._spent + self._reserved + cost > self._max_cost:
                        self._closed = (f"the sweep's max_cost ${self._max_cost:g} is reached (${self._spent:.4f} "
                                        f"spent, ${self._reserved:.4f} in flight)")
                        self._cond.notify_all()
                        return self._closed
                    wait = self._wait_s(state, tokens, now)
                    if wait == 0.0 and not any(n for p, n in state.waiting.items() if p < priority):
                        break
                    self._cond.wait(wait if wait else None)
            finally:
                state.waiting[priority] -= 1
            state.in_flight += 1
            state.starts.append(now)
            self._next_ticket += 1
            ticket = self._next_ticket
            if spec.tokens_per_minute is not None:
                state.tokens[ticket] = (now, tokens)
            self._reserved += cost
            counters = state.counters
            counters["waited_s"] += now - started
            counters["max_in_flight"] = max(counters["max_in_flight"], state.in_flight)
            return {"ticket": ticket, "at": now, "tokens": tokens, "cost": cost}

    def release(self, endpoint: str, ticket: dict[str, Any], prompt_tokens: int | None = None,
                completion_tokens: int | None = None, cache_hit: bool = False, failed: bool = False) -> None:
        state = self._endpoints[endpoint]
        spec = state.spec
        with self._cond:
            state.in_flight -= 1
            self._reserved = max(0.0, self._reserved - float(ticket["cost"]))
            counters = state.counters
            if cache_hit:  # no provider call: it counts against no per-minute limit and costs nothing
                counters["cache_hits"] += 1
                with contextlib.suppress(ValueError):
                    state.starts.remove(ticket["at"])
                state.tokens.pop(ticket["ticket"], None)
            else:
                counters["calls"] += 1
                prompt = int(prompt_tokens if prompt_tokens is not None else ticket["tokens"])
                completion = int(completion_tokens or 0)
                counters["prompt_tokens"] += prompt
                counters["completion_tokens"] += completion
                if ticket["ticket"] in state.tokens:
                    state.tokens[ticket["ticket"]] = (float(ticket["at"]), prompt + completion)
                cost = (prompt * (spec.input_price or 0.0) + completion * (spec.output_price or 0.0))
                counters["cost"] += cost
                self._spent += cost
                if failed:
                    counters["failed"] += 1
                else:
                    state.consecutive_429 = 0
                    state.successes += 1
                    if state.limit < spec.max_concurrency and state.successes >= math.floor(state.limit):
                        state.successes = 0
                        state.limit = min(float(spec.max_concurrency), state.limit + 1.0)
            self._cond.notify_all()

    def throttled(self, endpoint: str, retry_after: float | None = None) -> float:
        """The endpoint answered 429: pause every caller; returns the pause from now, in seconds."""
        state = self._endpoints[endpoint]
        with self._cond:
            now = time.monotonic()
            state.counters["throttled"] += 1
            state.consecutive_429 += 1
            if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
                delay = min(float(retry_after), _MAX_BACKOFF_S)
            else:
                delay = float(min(2 ** (state.consecutive_429 - 1), _MAX_BACKOFF_S))
            until = now + delay
            if until > state.pause_until:
                state.counters["backoff_s"] += until - max(now, state.pause_until)
                state.pause_until = until
            if now >= state.decrease_after:  # one halving per pause, however many calls hit the 429
                state.limit = max(1.0, state.limit / 2.0)
                state.successes = 0
                state.decrease_after = until
            self._cond.notify_all()
            return delay

    def close(self, reason: str) -> None:
        """Refuse every call from now on (the sweep is stopping); waiting callers get ``reason``."""
        with self._cond:
            if self._closed is None:
                self._closed = reason
            self._cond.notify_all()

    def exhausted(self) -> str | None:
        with self._cond:
            return self._closed

    def stats(self) -> dict[str, Any]:
        with self._cond:
            out: dict[str, Any] = {}
            for name, state in self._endpoints.items():
                counters = dict(state.counters)
                counters["backoff_s"] = round(counters["backoff_s"], 3)
                counters["waited_s"] = round(counters["waited_s"], 3)
                counters["cost"] = round(counters["cost"], 6)
                out[name] = {**counters, "max_concurrency": state.spec.max_concurrency,
                             "concurrency_now": math.floor(state.limit), "in_flight": state.in_flight,
                             "waiting": {str(p): n for p, n in sorted(state.waiting.items()) if n}}
            return {"endpoints": out, "spent": round(self._spent, 6), "max_cost": self._max_cost,
                    "stopped": self._closed}

    # -- arithmetic -----------------------------------------------------------------------
    @staticmethod
    def _worst_cost(spec: EndpointSpec, tokens: int) -> float:
        return tokens * (spec.input_price or 0.0) + spec.completion_reserve * (spec.output_price or 0.0)

    @staticmethod
    def _wait_s(state: _Endpoint, tokens: int, now: float) -> float | None:
        """0 when a call may start now, else how long to wait (None: until a call ends)."""
        spec = state.spec
        if now < state.pause_until:
            return state.pause_until - now
        if state.in_flight >= max(1, math.floor(state.limit)):
            return None
        while state.starts and state.starts[0] <= now - _WINDOW_S:
            state.starts.popleft()
        if spec.requests_per_minute is not None and len(state.starts) >= spec.requests_per_minute:
            return state.starts[0] + _WINDOW_S - now
        if spec.tokens_per_minute is not None:
            for key in [k for k, (at, _) in state.tokens.items() if at <= now - _WINDOW_S]:
                del state.tokens[key]
            used = sum(n for _, n in state.tokens.values())
            if used and used + tokens > spec.tokens_per_minute:
                return min(at for at, _ in state.tokens.values()) + _WINDOW_S - now
        return 0.0


class Hub(Protocol):
    """What a gate needs of a hub: :class:`LimiterHub` itself, a manager proxy of it or a Ray adapter."""

    def acquire(self, endpoint: str, tokens: int = 0, priority: int = 0) -> dict[str, Any] | str: ...

    def release(self, endpoint: str, ticket: dict[str, Any], prompt_tokens: int | None = None,
                completion_tokens: int | None = None, cache_hit: bool = False, failed: bool = False) -> None: ...

    def throttled(self, endpoint: str, retry_after: float | None = None) -> float: ...

    def close(self, reason: str) -> None: ...

    def exhausted(self) -> str | None: ...

    def stats(self) -> dict[str, Any]: ...


class Permit:
    """One granted slot; say how the call ended with :meth:`done`, :meth:`throttled` or :meth:`failed`."""

    def __init__(self, gate: Gate, ticket: dict[str, Any]) -> None:
        self._gate = gate
        self._ticket = ticket
        self._open = True

    def done(self, prompt_tokens: int | None = None, completion_tokens: int | None = None, *,
             cache_hit: bool = False) -> None:
        if self._open:
            self._open = False
            self._gate.hub.release(self._gate.endpoint, self._ticket, prompt_tokens, completion_tokens, cache_hit)

    def throttled(self, retry_after: float | None) -> None:
        """The endpoint answered 429 (``retry_after``: its hint in seconds, if any)."""
        self._gate.hub.throttled(self._gate.endpoint, retry_after)
        self.failed()

    def failed(self) -> None:
        if self._open:
            self._open = False
            self._gate.hub.release(self._gate.endpoint, self._ticket, None, None, False, True)


@dataclass(frozen=True)
class Gate:
    """The limiter of one endpoint as seen by a caller in this process."""

    hub: Hub
    endpoint: str
    priority: int = 0

    def check(self) -> None:
        """Raise :class:`BudgetExceededError` when the hub refuses every call (budget spent, stopping)."""
        reason = self.hub.exhausted()
        if reason is not None:
            raise BudgetExceededError(f"Not calling {self.endpoint}: {reason}.")

    def enter(self, tokens: int = 0) -> Permit:
        """Wait for a slot (``tokens``: the prompt's estimated size); the caller must end the permit."""
        ticket = self.hub.acquire(self.endpoint, max(0, int(tokens)), self.priority)
        if isinstance(ticket, str):
            raise BudgetExceededError(f"Not calling {self.endpoint}: {ticket}.")
        return Permit(self, ticket)

    @contextlib.contextmanager
    def slot(self, tokens: int = 0) -> Iterator[Permit]:
        """Wait for a slot; the block makes the call. An exception leaves the call counted as failed."""
        permit = self.enter(tokens)
        try:
            yield permit
        finally:
            permit.failed()  # no-op once the block reported the outcome


_installed: tuple[Hub, frozenset[str], int] | None = None
_install_lock = threading.Lock()


def installed_hub() -> Hub | None:
    return None if _installed is None else _installed[0]


def gate_for(endpoint: str | None) -> Gate | None:
    """The gate of ``endpoint`` (a sweep model name) in this process, or None where no limits apply."""
    current = _installed
    if current is None or endpoint is None or endpoint not in current[1]:
        return None
    return Gate(current[0], endpoint, current[2])


def close_gates(reason: str) -> None:
    """Make every gate of this process's hub refuse further calls with ``reason``."""
    current = _installed
    if current is not None:
        current[0].close(reason)


@contextlib.contextmanager
def use_hub(hub: Hub, endpoints: list[str], *, priority: int = 0) -> Iterator[Hub]:
    """Route the LM calls of ``endpoints`` made in this process through ``hub`` while the block runs."""
    global _installed
    with _install_lock:
        previous = _installed
        _installed = (hub, frozenset(endpoints), priority)
    try:
        yield hub
    finally:
        with _install_lock:
            _installed = previous


def set_priority(priority: int) -> None:
    """The priority of this process's calls from now on (a worker process between two units)."""
    global _installed
    with _install_lock:
        if _installed is not None:
            _installed = (_installed[0], _installed[1], priority)


def install_hub(hub: Hub, endpoints: list[str], *, priority: int = 0) -> None:
    """Route this process's LM calls of ``endpoints`` through ``hub`` for the rest of its life (workers)."""
    global _installed
    with _install_lock:
        _installed = (hub, frozenset(endpoints), priority)
