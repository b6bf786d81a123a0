"""One :class:`~helm_optimizer.serving.limiter.LimiterHub` for many processes: a manager, or a Ray actor.

* :func:`shared_hub` starts the hub in a multiprocessing manager process (the standard library's
  object server) and yields a proxy; the proxy pickles into child processes of the same sweep, which
  then share one set of limits with this process.
* :func:`ray_hub` starts the hub as a threaded Ray actor; :class:`RayHub` is the proxy-like adapter a
  Ray worker uses, so the limits hold across every worker and machine of the Ray cluster.

Children of a sweep must not outlive it (a killed sweep would leave them writing into its output
directory): :func:`watch_lifeline` makes a child exit as soon as the sweep process is gone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.managers import BaseManager
from typing import Any

from helm_optimizer.serving.limiter import Hub, LimiterHub

__all__ = ["HubManager", "RayHub", "lifeline", "ray_hub", "shared_hub", "watch_lifeline"]

_EXPOSED = ("names", "acquire", "release", "throttled", "close", "exhausted", "stats")


class HubManager(BaseManager):
    """A manager serving one :class:`LimiterHub` (``manager.LimiterHub(endpoints, max_cost)``)."""


HubManager.register("LimiterHub", LimiterHub, exposed=_EXPOSED)


def watch_lifeline(conn: Connection) -> None:
    """In a child process: exit at once when the sweep holding the other end of ``conn`` is gone."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                conn.recv()
        os._exit(0)

    threading.Thread(target=watch, name="hopt-lifeline", daemon=True).start()


@contextlib.contextmanager
def lifeline(context: BaseContext) -> Iterator[Connection]:
    """The read end of a pipe whose write end only this process holds (closed when the block ends)."""
    reader, writer = context.Pipe(duplex=False)
    try:
        yield reader
    finally:
        writer.close()
        reader.close()


@contextlib.contextmanager
def shared_hub(endpoints: list[dict[str, Any]], max_cost: float | None, *, context: BaseContext,
               life: Connection) -> Iterator[Hub]:
    """A hub in a manager process (tied to ``life``); the proxy it yields pickles into child processes."""
    manager = HubManager(ctx=context)
    manager.start(initializer=watch_lifeline, initargs=(life,))
    try:
        hub: Hub = manager.LimiterHub(endpoints, max_cost)  # type: ignore[attr-defined]
        yield hub
    finally:
        manager.shutdown()


class RayHub:
    """A :class:`LimiterHub` living in a Ray actor, called from any Ray worker or the driver."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def acquire(self, endpoint: str, tokens: int = 0, priority: int = 0) -> dict[str, Any] | str:
        return self._get(self.handle.acquire.remote(endpoint, tokens, priority))  # type: ignore[no-any-return]

    def release(self, endpoint: str, ticket: dict[str, Any], prompt_tokens: int | None = None,
                completion_tokens: int | None = None, cache_hit: bool = False, failed: bool = False) -> None:
        self._get(self.handle.release.remote(endpoint, ticket, prompt_tokens, completion_tokens, cache_hit, failed))

    def throttled(self, endpoint: str, retry_after: float | None = None) -> float:
        return float(self._get(self.handle.throttled.remote(endpoint, retry_after)))

    def close(self, reason: str) -> None:
        self._get(self.handle.close.remote(reason))

    def exhausted(self) -> str | None:
        return self._get(self.handle.exhausted.remote())  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._get(self.handle.stats.remote())  # type: ignore[no-any-return]

    @staticmethod
    def _get(ref: Any) -> Any:
        import ray

        return ray.get(ref)


def ray_hub(endpoints: list[dict[str, Any]], max_cost: float | None) -> RayHub:
    """Start the hub as a threaded Ray actor (callers block in its threads, not in its queue)."""
    import ray

    actor = ray.remote(LimiterHub).options(max_concurrency=1024, num_cpus=0)
    return RayHub(actor.remote(endpoints, max_cost))
