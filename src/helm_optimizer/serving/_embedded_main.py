"""Child-process entry point that runs llama.cpp's OpenAI-compatible server for one GGUF file.

Started by :class:`helm_optimizer.serving.embedded.EmbeddedServer`, never imported by library code::

    python -m helm_optimizer.serving._embedded_main --model-path P --port N --parallel K \
        --ctx-per-slot C --threads T [--alias NAME] [--parent-pid PID] [--pdeathsig]

The server binds 127.0.0.1 only and runs until SIGTERM or SIGINT, or until the parent process dies:
``--pdeathsig`` asks the kernel for SIGTERM when the parent dies (Linux only, and only safe when the
parent spawned us from its main thread, since the signal follows the spawning *thread*), and a
watchdog thread polls ``os.getppid()`` against ``--parent-pid`` in every case. Native llama.cpp logs
go to fd 2, which the parent redirects to a log file. Exit status: 0 after a clean stop, 1 when the
server could not start.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["main"]

logger = logging.getLogger("helm_optimizer.serving.embedded.child")

_PR_SET_PDEATHSIG = 1
_WATCHDOG_INTERVAL = 0.5


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helm_optimizer.serving._embedded_main")
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--ctx-per-slot", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-ram-mib", type=int, default=0,
                        help="host memory for llama.cpp's cross-request prompt cache (0: off)")
    parser.add_argument("--alias", default=None)
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    parser.add_argument("--pdeathsig", action="store_true", help="ask the kernel for SIGTERM on parent death")
    parser.add_argument("--verbosity", type=int, default=3, help="llama.cpp log level (3: info, 2: warnings)")
    return parser.parse_args(argv)


def _set_pdeathsig() -> None:
    """Best effort: have Linux send SIGTERM to this process when its parent (thread) dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed with errno %d", ctypes.get_errno())
    except OSError as exc:
        logger.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_WATCHDOG_INTERVAL)
        if os.getppid() != parent_pid:
            logger.info("Parent process %d is gone; shutting down.", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="helm-optimizer child: %(message)s")
    # A plain flag: a signal handler that takes a lock (threading.Event.set) can deadlock the main thread.
    stop: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.pdeathsig:
        _set_pdeathsig()
    if args.parent_pid is not None:
        if os.getppid() != args.parent_pid:
            logger.info("Parent process %d exited before the server started.", args.parent_pid)
            return 0
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()

    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model_path
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_per_slot * args.parallel  # llama.cpp splits n_ctx across the slots
    params.cpuparams.n_threads = args.threads
    # llama.cpp keeps up to 8 GiB of finished prompts in host memory by default; a slot still reuses
    # its own cached prefix without it.
    params.cache_ram_mib = args.cache_ram_mib
    params.cpuparams_batch.n_threads = args.threads
    params.verbosity = args.verbosity
    params.ui = False
    if args.alias:
        params.model_alias = {args.alias}

    if stop:
        return 0
    started = time.monotonic()
    try:
        server = xlc.Server(params)
    except RuntimeError as exc:
        logger.error("llama.cpp server failed to start: %s", exc)
        return 1
    logger.info(
        "Serving %s at %s (%d slots x %d tokens, %d threads) after %.2f s.",
        args.model_path,
        server.listening_address,
        args.parallel,
        args.ctx_per_slot,
        args.threads,
        time.monotonic() - started,
    )
    sys.stderr.flush()
    try:
        while not stop:
            time.sleep(0.2)
    finally:
        logger.info("Stopping the server.")
        del server  # joins llama.cpp's HTTP and inference threads
    logger.info("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
