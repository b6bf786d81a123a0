"""Ctrl-C: one line on the console, exit code 130, and no long wait for LM calls still in flight.

Finished work is already on disk when Ctrl-C arrives: every file is written atomically and the LM
caches commit each answer as it comes. What is still running are LM calls in worker threads
(DSPy's and HELM's thread pools), which Python would otherwise wait for before exiting, for up to
a request timeout times its retries. The handler below prints the message at once, lets the
main thread unwind (``KeyboardInterrupt``), and after :data:`GRACE_S` seconds leaves without the
calls still in flight. A second Ctrl-C leaves at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import NoReturn

__all__ = ["GRACE_S", "INTERRUPTED", "MESSAGE", "SigintHandler", "exit_interrupted"]

INTERRUPTED = 130  # the shell's code for a run ended by SIGINT
GRACE_S = 2.0  # how long an interrupted run waits for LM calls in flight before leaving without them
MESSAGE = "Interrupted. Finished work is saved; run the same command again to resume."

logger = logging.getLogger(__name__)


class SigintHandler:
    """Owns SIGINT while a command runs (in the main thread; elsewhere it does nothing)."""

    def __init__(self) -> None:
        self.fired_at: float | None = None
        self._previous: signal.Handlers | object | None = None
        self._installed = False

    def __enter__(self) -> SigintHandler:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # After an interrupt the handler stays: the process is leaving, and a second Ctrl-C must not
        # land in the interpreter's shutdown as a traceback.
        if self._installed and self.fired_at is None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Nothing here prints or imports: the signal may have landed in the middle of either.
        if self.fired_at is not None:
            _leave(INTERRUPTED, announce=True)
        self.fired_at = time.monotonic()
        # The main thread may get stuck joining a thread pool (HELM waits for its calls in flight).
        threading.Thread(target=_leave_after, args=(GRACE_S,), name="hopt-interrupt", daemon=True).start()
        raise KeyboardInterrupt


_announced = threading.Lock()  # held by whoever printed the message


def _announce() -> None:
    """The message through the console (from the main thread, once it has unwound)."""
    if not _announced.acquire(blocking=False):
        return
    from helm_optimizer.cli._common import err_console

    logger.info("Interrupted (Ctrl-C); exiting with code %d.", INTERRUPTED)
    err_console.print(MESSAGE, highlight=False, markup=False, soft_wrap=True)


def _announce_raw() -> None:
    """The message written straight to stderr (when the main thread is stuck or a second Ctrl-C came)."""
    if _announced.acquire(blocking=False):
        with contextlib.suppress(OSError):
            os.write(2, (MESSAGE + "\n").encode())


def exit_interrupted(handler: SigintHandler | None = None) -> NoReturn:
    """End an interrupted command: the message (once), then exit 130 within the grace period."""
    _announce()
    started = handler.fired_at if handler is not None and handler.fired_at is not None else time.monotonic()
    deadline = started + GRACE_S
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not current):
        _leave(INTERRUPTED)
    sys.exit(INTERRUPTED)


def _leave_after(seconds: float) -> None:
    time.sleep(seconds)
    _leave(INTERRUPTED, announce=True)


def _leave(code: int, *, announce: bool = False) -> NoReturn:
    """Exit now without joining worker threads (their LM calls are abandoned); logs and streams flushed."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if announce:
        _announce_raw()
    os._exit(code)
