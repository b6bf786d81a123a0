"""Shared CLI plumbing: consoles, logging, option parsing helpers. Imports nothing heavy."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "parse_options", "setup_logging"]

console = Console()
# Progress and errors go to stderr: HELM prints to stdout, and stdout may be piped.
err_console = Console(stderr=True)

_NOISY = ("httpx", "httpcore", "urllib3", "LiteLLM", "litellm", "asyncio", "filelock", "sqlitedict", "absl",
          "datasets", "optuna", "matplotlib", "openai", "dspy", "helm", "numexpr", "torch", "git", "fsspec")


class _ConsoleFilter(logging.Filter):
    """On the console: our own warnings; HELM and DSPy only when they report errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("helm_optimizer"):
            return True
        return record.levelno >= logging.ERROR


def setup_logging(log_dir: Path | None = None, *, verbose: int = 0) -> Path | None:
    """Console: warnings (info with -v, debug with -vv); file: everything at INFO or more."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.setLevel(level)
    handler.addFilter(_ConsoleFilter())
    root.addHandler(handler)
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
