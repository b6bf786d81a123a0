"""A usage ledger: LM calls, tokens and retries of one HELM run, counted where they happen.

HELM builds its clients itself (from a deployment's ``client_spec``), possibly in another process,
so the clients cannot hand counts back through Python objects. Each of our HELM clients gets the
path of a ledger file in its arguments and appends one JSON line per event it sees (a call that
missed HELM's cache, its tokens, a retried HTTP attempt); whoever started the run reads the
totals back. Lines are appended with single ``write`` calls on an ``O_APPEND`` descriptor, so
concurrent writers (threads or processes) never interleave within a line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LedgerTotals", "UsageLedger"]


@dataclass(frozen=True)
class LedgerTotals:
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


_KEYS = ("lm_calls", "prompt_tokens", "completion_tokens", "retries")


class UsageLedger:
    """An append-only JSON-lines file of usage events (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def start(self) -> UsageLedger:
        """Begin a fresh ledger (an earlier run's lines are dropped)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")
        return self

    def add(self, *, lm_calls: int = 0, prompt_tokens: int = 0, completion_tokens: int = 0, retries: int = 0) -> None:
        counts = {"lm_calls": lm_calls, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "retries": retries}
        line = (json.dumps({k: int(v) for k, v in counts.items() if v}, sort_keys=True) + "\n").encode("utf-8")
        if line == b"{}\n":
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def totals(self) -> LedgerTotals:
        """The sums of every complete line (a line cut short by a killed writer is skipped)."""
        sums = dict.fromkeys(_KEYS, 0)
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return LedgerTotals()
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                for key in _KEYS:
                    value = event.get(key, 0)
                    if isinstance(value, int) and not isinstance(value, bool):
                        sums[key] += value
        return LedgerTotals(**sums)
