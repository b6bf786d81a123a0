"""Shared CLI plumbing: consoles, logging, option parsing helpers. Imports nothing heavy."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["CAPTURED_LOGGER", "console", "err_console", "is_tty", "parse_options", "setup_logging"]

console = Console()
# Progress and errors go to stderr: HELM prints to stdout, and stdout may be piped.
err_console = Console(stderr=True)

_NOISY = ("httpx", "httpcore", "urllib3", "LiteLLM", "litellm", "asyncio", "filelock", "sqlitedict", "absl",
          "datasets", "optuna", "matplotlib", "openai", "dspy", "helm", "numexpr", "torch", "git", "fsspec")
CAPTURED_LOGGER = "helm_optimizer.captured"
"""Lines other libraries printed while a command ran (see :mod:`helm_optimizer.cli.capture`): log file only."""
_CONSOLE_WIDTH = 200


class _ConsoleFilter(logging.Filter):
    """On the console: our own warnings; HELM's and DSPy's errors only the first time per library."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == CAPTURED_LOGGER:
            return False
        if record.name.startswith("helm_optimizer"):
            return True
        if record.levelno < logging.ERROR:
            return False
        library = record.name.split(".", 1)[0]
        with self._lock:
            first = library not in self._seen
            self._seen.add(library)
        return first


class _OneLineFormatter(logging.Formatter):
    """One console line per record: the first line of the message, cut, pointing at the log for the rest."""

    def __init__(self, log_path: Path | None, *, level_prefix: bool = False) -> None:
        super().__init__()
        self.log_path = log_path
        self.level_prefix = level_prefix  # plain streams have no level column

    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().strip().splitlines() or [""]
        line = " ".join(lines[0].split())
        cut = len(lines) > 1 or len(line) > _CONSOLE_WIDTH or record.exc_info is not None
        if len(line) > _CONSOLE_WIDTH:
            line = line[:_CONSOLE_WIDTH].rstrip() + "…"
        if not record.name.startswith("helm_optimizer"):
            line = f"{record.name.split('.', 1)[0]}: {line} (its further errors go to the log only)"
        if cut:
            line += f" (full text in {self.log_path})" if self.log_path else " (full text with -vv)"
        return f"{record.levelname}: {line}" if self.level_prefix else line


def setup_logging(log_dir: Path | None = None, *, verbose: int = 0) -> Path | None:
    """Console: warnings (info with -v, debug with -vv), one line each; file: everything at INFO or more."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.setLevel(logging.DEBUG)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose < 2 else logging.DEBUG)
    logging.getLogger("helm").propagate = True
    # rouge-score logs "Using default tokenizer." through absl on every scored instance.
    logging.getLogger("absl").setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
    log_path = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_path = log_dir / "helm-optimizer.log"
            file_handler = logging.FileHandler(log_path, encoding="utf-8")
            file_handler.setLevel(logging.INFO if verbose < 2 else logging.DEBUG)
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(file_handler)
        except OSError:
            log_path = None
    handler: logging.Handler
    if err_console.is_terminal:
        handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    else:  # piped: one unwrapped line per record
        handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(_ConsoleFilter())
    if verbose < 2:  # -vv shows records whole
        handler.setFormatter(_OneLineFormatter(log_path, level_prefix=not err_console.is_terminal))
    root.addHandler(handler)
    os.environ.setdefault("HELM_LOG_LEVEL", "INFO")
    return log_path


def parse_options(values: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are parsed as JSON when they look like JSON, else kept as strings."""
    import json

    from helm_optimizer.errors import ConfigError

    out: dict[str, Any] = {}
    for item in values or []:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--option expects KEY=VALUE, got {item!r}.")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def is_tty() -> bool:
    return sys.stderr.isatty()
