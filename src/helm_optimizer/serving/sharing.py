"""One embedded server per model, shared within a process and across processes.

:func:`ensure_server` reuses a server this process started (whatever its slots: DSPy's calls and
HELM's share it), then one another process advertises in ``<cache>/servers/<name>.json`` (how
``helm-optimizer serve`` in one terminal is found by a run in another, or a Ray worker finds its
driver's), and only then starts one, stopped when this process exits. :func:`plan_slots` sizes that
one server for the largest concurrency a run's stages need. :func:`serve_forever` is
``helm-optimizer serve``.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from pathlib import Path

from helm_optimizer._io import read_json
from helm_optimizer.errors import ServerError
from helm_optimizer.serving._procs import HOST, get_json, pid_alive
from helm_optimizer.serving.embedded import EmbeddedServer, make_dir, state_path
from helm_optimizer.serving.models import EmbeddedModel, dspy_model_name, get_embedded_model

__all__ = ["DEFAULT_SLOTS", "ensure_server", "plan_slots", "serve_forever", "stop_servers"]

logger = logging.getLogger(__name__)

_LOCK_WAIT = 180.0
DEFAULT_SLOTS = 4
"""Slots of a server started when nobody said how many concurrent requests to expect."""
_planned: dict[str, int] = {}
_servers: dict[str, EmbeddedServer] = {}
_started: list[EmbeddedServer] = []
_lock = threading.Lock()
_atexit_registered = False


def _find_advertised(spec: EmbeddedModel, parallel: int, ignore: set[int]) -> EmbeddedServer | None:
    """A live server for ``spec`` that another process advertises, if any (pids in ``ignore`` skipped)."""
    try:
        state = read_json(state_path(spec))
        pid, port, slots = int(state["pid"]), int(state["port"]), int(state["parallel"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if pid in ignore or not pid_alive(pid):
        return None
    models = get_json(f"http://{HOST}:{port}/v1/models")
    if get_json(f"http://{HOST}:{port}/health") is None or not isinstance(models, dict):
        return None
    ids = {m.get("id") for m in models.get("data", []) if isinstance(m, dict)}
    if spec.alias not in ids:  # the pid or port was reused by something else
        return None
    server = EmbeddedServer.attach(spec, state)
    logger.info(
        "Reusing %s at %s (pid %d, %d slots, from %s); it stops when the process that started it exits.",
        spec.public_name,
        server.api_base,
        pid,
        slots,
        state_path(spec),
    )
    if slots < parallel:
        logger.info("It has %d slots for %d requested; requests beyond that wait their turn.", slots, parallel)
    return server


def plan_slots(model: str, slots: int) -> None:
    """Declare that this process will send up to ``slots`` concurrent requests to ``model``.

    A run with several stages (optimization at ``num_threads``, HELM evaluation at its own
    ``num_threads``) plans the largest before the first stage starts, so that the one server it
    starts is sized for every stage instead of a second, larger one being started later.
    """
    if slots < 1:
        raise ServerError(f"slots must be at least 1, not {slots}.")
    spec = get_embedded_model(model)
    with _lock:
        _planned[spec.name] = max(_planned.get(spec.name, 0), slots)


def ensure_server(model: str = "local/smollm2", *, parallel: int | None = None) -> EmbeddedServer:
    """The running server for ``model``: one per process tree, reused whatever its number of slots.

    Order: the one this process already started (or attached to); one another process advertises
    in ``<cache>/servers/<name>.json`` (its pid alive, ``/health`` answering: how a parent's server,
    or an explicit ``helm-optimizer serve``, is shared); else a new one, advertised there and
    stopped when this process exits, with as many slots as the largest of ``parallel`` and what
    :func:`plan_slots` declared (:data:`DEFAULT_SLOTS` when neither says). Requests beyond a
    server's slots wait their turn; a second server for the same model is never started.
    """
    global _atexit_registered
    spec = get_embedded_model(model)
    wanted = max(parallel or 0, _planned.get(spec.name, 0)) or DEFAULT_SLOTS
    with _lock:
        current = _servers.get(spec.name)
        if current is not None and current.running:
            if current.parallel < wanted:
                logger.info("%s has %d slots for %d concurrent requests; the others wait their turn.",
                            spec.public_name, current.parallel, wanted)
            return current
        from filelock import FileLock, Timeout

        state_file = state_path(spec)
        make_dir(state_file.parent)
        # Processes launched together wait for the first one's server instead of each starting one.
        lock = FileLock(str(state_file.with_suffix(".lock")))
        try:
            lock.acquire(timeout=_LOCK_WAIT)
        except Timeout:
            raise ServerError(
                f"Another process has been starting {spec.public_name} for over {_LOCK_WAIT:g} s "
                f"(lock {lock.lock_file}); stop it or run `helm-optimizer serve` once and retry."
            ) from None
        try:
            server = _find_advertised(spec, wanted, ignore={s.pid for s in _started if s.pid is not None})
            if server is None:
                server = EmbeddedServer(model, parallel=wanted).start()
                _started.append(server)
                if not _atexit_registered:
                    atexit.register(stop_servers)
                    _atexit_registered = True
                server.write_state_file()
        finally:
            lock.release()
        _servers[spec.name] = server
        return server


def stop_servers() -> None:
    """Stop every server :func:`ensure_server` started in this process, and forget the planned slots
    (run at exit too)."""
    with _lock:
        started = list(_started)
        _started.clear()
        _servers.clear()
        _planned.clear()
    for server in started:
        try:
            server.stop()
        except Exception:  # at exit, keep stopping the others
            logger.exception("Could not stop %r", server)


def serve_forever(
    model: str = "local/smollm2",
    *,
    port: int | None = None,
    parallel: int = 4,
    ctx_per_slot: int | None = None,
    threads: int | None = None,
    log_dir: Path | None = None,
    startup_timeout: float = 60,
) -> None:
    """Serve ``model`` until Ctrl-C (or SIGTERM), advertised so that other processes reuse it."""
    server = EmbeddedServer(
        model,
        port=port,
        parallel=parallel,
        ctx_per_slot=ctx_per_slot,
        threads=threads,
        log_dir=log_dir,
        startup_timeout=startup_timeout,
    )
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        server.start()
        server.write_state_file()
        logger.info(
            "Serving %s at %s (%d slots; model name for DSPy: %s; log %s). Press Ctrl-C to stop.",
            server.model,
            server.api_base,
            server.parallel,
            dspy_model_name(server.model),
            server.log_path,
        )
        while server.running:
            time.sleep(0.5)
        raise ServerError(
            f"The model server for {server.model} exited unexpectedly; see {server.log_path}. "
            f"Last log lines: {' | '.join(server.log_tail())}"
        )
    except KeyboardInterrupt:
        logger.info("Stopping %s.", server.model)
    finally:
        server.stop()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
