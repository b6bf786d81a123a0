"""What every LM call of a run shares: the slots that bound calls in flight, and the one retry policy.

:class:`CallSlots` bounds the calls in flight across every thread *and* event loop of a run (a
``threading.Semaphore`` would block an event loop; an ``asyncio.Semaphore`` belongs to one loop).
:func:`retry_policy` gives tenacity's arguments for one LM; ``tenacity.Retrying`` and
``tenacity.AsyncRetrying`` take the same ones, so synchronous and asynchronous calls retry alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import tenacity

__all__ = ["CallSlots", "retry_delay", "retry_policy"]


@dataclass(eq=False)
class _Waiter:
    wake: Callable[[], None]
    granted: bool = False


@dataclass
class CallSlots:
    """At most ``limit`` holders at a time, waiting threads and coroutines served first come, first served."""

    limit: int
    _free: int = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _waiters: collections.deque[_Waiter] = field(init=False, default_factory=collections.deque)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"CallSlots needs a limit of at least 1, got {self.limit}")
        self._free = self.limit

    def _take_or_queue(self, wake: Callable[[], None]) -> _Waiter | None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return None
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
            return waiter

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True  # the slot passes straight to the first waiter
            else:
                self._free = min(self.limit, self._free + 1)
                return
        waiter.wake()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        event = threading.Event()
        if self._take_or_queue(event.set) is not None:
            event.wait()
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def held_async(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def grant() -> None:
            if not granted.done():
                granted.set_result(None)

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(grant)
            except RuntimeError:  # that event loop is closed: pass the slot on
                self.release()

        waiter = self._take_or_queue(wake)
        if waiter is not None:
            try:
                await granted
            except asyncio.CancelledError:
                with self._lock:
                    handed_over = waiter.granted
                    if not handed_over:
                        self._waiters.remove(waiter)
                if handed_over:
                    self.release()
                raise
        try:
            yield
        finally:
            self.release()


def retry_delay(exc: BaseException | None, retries_so_far: int) -> float:
    """The provider's ``retry_after`` hint when it gives one, else 1, 2, 4, ... seconds (at most 60)."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float) and not isinstance(hint, bool) and math.isfinite(hint) and hint >= 0:
        return min(float(hint), 60.0)
    return float(min(2 ** min(retries_so_far, 6), 60))


def retry_policy(*, retries: int, retryable: Callable[[BaseException], bool],
                 on_retry: Callable[[BaseException, int, float], None]) -> dict[str, Any]:
    """tenacity's arguments: up to ``retries`` more attempts after a ``retryable`` failure.

    ``on_retry(error, retry number, delay)`` runs before each wait (counting and logging belong there).
    The last failure is raised as it is.
    """

    def failure(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome is not None else None

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = failure(state)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            on_retry(error, state.attempt_number, delay)

    return {
        "stop": tenacity.stop_after_attempt(retries + 1),
        "retry": tenacity.retry_if_exception(retryable),
        "wait": lambda state: retry_delay(failure(state), state.attempt_number - 1),
        "before_sleep": before_sleep,
        "reraise": True,
    }
