"""Keep other libraries' console output (HELM's and DSPy's prints and tqdm bars) off the screen.

While :func:`foreign_output_to_log` is active, ``sys.stdout`` and ``sys.stderr`` are streams that
write each finished line to the log (logger ``helm_optimizer.captured``, which the console handler
never shows) and that are not terminals, so tqdm bars asked for with ``disable=None`` (HELM's) stay
off. The command's own consoles keep writing to the real terminal. Output written by C code
straight to file descriptors 1 and 2 is not captured.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from helm_optimizer.cli._common import CAPTURED_LOGGER, console, err_console

__all__ = ["LogStream", "foreign_output_to_log"]

_MAX_LINE = 2000


class LogStream(io.TextIOBase):
    """A text stream that logs every complete line; a carriage return keeps only the text after it."""

    def __init__(self, name: str, logger: logging.Logger) -> None:
        super().__init__()
        self.name = name
        self._logger = logger
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            rest, self._buffer = self._buffer, ""
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        final = line.rsplit("\r", 1)[-1].strip()  # a progress bar's last state
        if final:
            self._logger.info("%s: %s", self.name, final[:_MAX_LINE])


@contextlib.contextmanager
def foreign_output_to_log() -> Iterator[None]:
    """Route ``print``/tqdm output of this process to the log while the block runs (see module doc)."""
    logger = logging.getLogger(CAPTURED_LOGGER)
    real_out: TextIO = sys.stdout
    real_err: TextIO = sys.stderr
    console.file, err_console.file = real_out, real_err  # our own output still reaches the terminal
    out, err = LogStream("stdout", logger), LogStream("stderr", logger)
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        yield
    finally:
        out.flush()
        err.flush()
        sys.stdout, sys.stderr = real_out, real_err
        # Back to following sys.stdout / sys.stderr, as the consoles were created.
        console.file = err_console.file = None  # type: ignore[assignment]
