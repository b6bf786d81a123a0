"""A pool of workers for DSPy work, and small combinators over its futures.

Tasks run by priority (sequential chains first, single evaluation calls after) in a copy of the
context they were submitted from, so ``dspy.context(lm=...)`` applies; an evaluation is split into
one item per example and items identical to one already asked are shared.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from typing import Any, TypeVar

import dspy

__all__ = ["WorkPool", "copy_outcome", "gather", "map_result", "resolved", "then", "when_all"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkPool:
    """``num_threads + spare`` workers running DSPy work, each task in a copy of the context it was submitted from.

    ``spare`` workers are for callers whose LM calls are bounded elsewhere (the usage meter's slots):
    while some workers format, parse and score outside their LM call, the spare ones keep every
    call slot busy.

    Tasks run by ``priority`` (:attr:`CHAIN` before :attr:`ITEM`), then in submission order: the
    sequential chains that everything else waits for (bootstraps, summaries, proposals) get a worker
    first, single evaluation calls fill the others. ``dspy.context(lm=...)`` around a submission
    applies to the task. Use as a context manager; leaving it cancels what has not started and
    waits for what has.
    """

    CHAIN = 0
    ITEM = 1

    def __init__(self, num_threads: int, *, spare: int = 0) -> None:
        self.num_threads = max(1, num_threads) + max(0, spare)
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.RLock()
        self._items: dict[Any, Future[Any]] = {}

    def __enter__(self) -> WorkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
        self._cancel_queued()
        for _ in self._threads:
            self._queue.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join()
        self._cancel_queued()

    def _cancel_queued(self) -> None:
        while True:
            try:
                _, _, task = self._queue.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                task[0].cancel()

    def submit(self, fn: Callable[..., T], *args: Any, context: contextvars.Context | None = None,
               priority: int = ITEM) -> Future[T]:
        future: Future[T] = Future()
        ctx = (context if context is not None else contextvars.copy_context()).copy()
        with self._lock:
            if self._closed:
                future.cancel()
                return future
            if len(self._threads) < self.num_threads:
                thread = threading.Thread(target=self._work, name=f"hopt-work-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._queue.put((priority, next(self._order), (future, ctx, fn, args)))
        return future

    def _work(self) -> None:
        while True:
            _, _, task = self._queue.get()
            if task is None:
                return
            future, ctx, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = ctx.run(fn, *args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shared_item(self, key: Any, fn: Callable[..., T], *args: Any, context: contextvars.Context) -> Future[T]:
        """``submit(fn, *args)`` unless a task with this key is running or done; failures are not kept."""
        with self._lock:
            known = self._items.get(key)
            if known is not None:
                return known
            future = self.submit(fn, *args, context=context)
            self._items[key] = future

        def forget_failure(done: Future[T]) -> None:
            if done.cancelled() or done.exception() is not None:
                with self._lock:
                    if self._items.get(key) is done:
                        del self._items[key]

        future.add_done_callback(forget_failure)
        return future

    def evaluate(self, program: Any, devset: Sequence[Any], metric: Callable[..., Any], *, max_errors: int | None,
                 failure_score: float = 0.0, context: contextvars.Context | None = None) -> Future[float]:
        """``dspy.Evaluate(devset, metric)(program).score``, one pool task per example.

        As in DSPy, an example that raises scores ``failure_score`` and the evaluation fails once
        ``max_errors`` examples raised (DSPy then stops starting the others; here they still run).
        """
        return _Evaluation(self, program, list(devset), metric, max_errors, failure_score, context).start()


def _program_key(program: Any) -> str:
    """Identical keys for programs that send identical requests (same demos and instructions)."""
    return json.dumps(program.dump_state(), sort_keys=True, default=str)


def _score_one(program: Any, metric: Callable[..., Any], example: Any) -> float:
    prediction = program(**example.inputs())
    return metric(example, prediction)  # type: ignore[no-any-return]


class _Evaluation:
    """One ``dspy.Evaluate`` call as pool items; an item already computed or running for an identical
    program and example is shared instead of asked again (what DSPy's LM cache does sequentially)."""

    def __init__(self, pool: WorkPool, program: Any, devset: list[Any], metric: Callable[..., Any],
                 max_errors: int | None, failure_score: float, context: contextvars.Context | None) -> None:
        self.pool = pool
        self.program = program
        self.devset = devset
        self.metric = metric
        self.context = context if context is not None else contextvars.copy_context()
        self.limit = max_errors if max_errors is not None else self.context.run(lambda: dspy.settings.max_errors)
        self.scores: list[float] = [failure_score] * len(devset)
        self.errors = 0
        self.remaining = len(devset)
        self.first_error: BaseException | None = None
        self.lock = threading.Lock()
        self.result: Future[float] = Future()

    def start(self) -> Future[float]:
        if not self.devset:
            self.result.set_exception(ValueError("devset must contain at least one example, got an empty devset."))
            return self.result
        key = _program_key(self.program)
        for index, example in enumerate(self.devset):
            item = self.pool.shared_item((key, id(self.metric), id(example)), _score_one, self.program, self.metric,
                                         example, context=self.context)
            item.add_done_callback(functools.partial(self._done, index))
        return self.result

    def _done(self, index: int, item: Future[float]) -> None:
        failed = item.cancelled() or item.exception() is not None
        if failed:
            logger.error("Error for %s: %s", self.devset[index], "cancelled" if item.cancelled() else item.exception())
        with self.lock:
            if failed:
                self.errors += 1
                if self.first_error is None and not item.cancelled():
                    self.first_error = item.exception()
            else:
                self.scores[index] = item.result()
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            if self.errors >= self.limit:
                error = RuntimeError(f"Evaluation cancelled: {self.errors} examples raised errors "
                                     f"(max_errors={self.limit}); the first: {self.first_error!r}")
                error.__cause__ = self.first_error
                self.result.set_exception(error)
            else:
                self.result.set_result(round(100 * sum(self.scores) / len(self.devset), 2))


def copy_outcome(source: Future[Any], target: Future[Any]) -> None:
    """Give ``target`` the result, failure or cancellation of the finished ``source`` (once)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


def then(first: Future[Any], step: Callable[[Any], Future[T]]) -> Future[T]:
    """A future for ``step(first.result())`` (itself a future), failing if either fails."""
    out: Future[T] = Future()

    def run(done: Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            copy_outcome(done, out)
            return
        try:
            inner = step(done.result())
        except Exception as exc:
            if not out.done():
                out.set_exception(exc)
            return
        inner.add_done_callback(lambda finished: copy_outcome(finished, out))

    first.add_done_callback(run)
    return out


def map_result(first: Future[Any], fn: Callable[[Any], T]) -> Future[T]:
    """A future for ``fn(first.result())``, computed in the thread that completes ``first``."""
    return then(first, lambda value: resolved(fn(value)))


def when_all(futures: Sequence[Future[Any]]) -> Future[None]:
    """Done when every future is; fails with the first failure."""
    out: Future[None] = Future()
    if not futures:
        out.set_result(None)
        return out
    remaining = [len(futures)]
    lock = threading.Lock()

    def one(done: Future[Any]) -> None:
        with lock:
            if out.done():
                return
            if done.cancelled() or done.exception() is not None:
                copy_outcome(done, out)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                out.set_result(None)

    for future in futures:
        future.add_done_callback(one)
    return out


def resolved(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


def gather(futures: Sequence[Future[T]]) -> list[T]:
    """Results in order; the first failure is raised once it happens (the pool's exit stops the rest)."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in futures:
        if future in done and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [f.result() for f in futures]
