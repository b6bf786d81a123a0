"""A live progress panel driven by the event dicts the library emits."""

from __future__ import annotations

import re
import threading
import time
from types import TracebackType
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from helm_optimizer.cli._common import err_console, is_tty

__all__ = ["LiveProgress"]

_FRACTION = re.compile(r"(\d+)/(\d+)")


class LiveProgress:
    """Shows stage, elapsed time, LM calls, calls/s, tokens, latest score and an ETA where one is known."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.perf_counter()
        self.state: dict[str, Any] = {"stage": "starting"}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._last_plain = ""

    def __enter__(self) -> LiveProgress:
        if is_tty():
            self._live = Live(self._render(), console=err_console, refresh_per_second=4, transient=False,
                              get_renderable=self._render)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.state.update({k: v for k, v in event.items() if v is not None})
            if not self.state.get("waiting"):
                self.state.pop("waiting", None)
            message = str(event.get("message") or "")
            match = _FRACTION.search(message)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                self.state["fraction"] = (done, total, time.perf_counter())
        if self._live is None:
            line = self._plain()
            if line != self._last_plain:
                err_console.print(line, highlight=False)
                self._last_plain = line

    def _plain(self) -> str:
        s = self.state
        parts = [f"[{self.title}] {s.get('stage', '')}"]
        for key in ("method", "run", "message", "waiting"):
            if s.get(key):
                parts.append(str(s[key]))
        if "lm_calls" in s:
            parts.append(f"{s['lm_calls']} LM calls")
        return " · ".join(parts)

    def _render(self) -> Table:
        s = self.state
        elapsed = time.perf_counter() - self.started
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        table.add_row(self.title, Text(str(s.get("stage", ""))))
        calls = int(s.get("lm_calls") or 0)
        rate = calls / elapsed if elapsed > 0 else 0.0
        table.add_row("elapsed", f"{elapsed:6.1f} s")
        table.add_row("LM calls", f"{calls}  ({rate:.1f}/s)")
        tokens = int(s.get("prompt_tokens") or 0) + int(s.get("completion_tokens") or 0)
        if tokens:
            table.add_row("tokens", f"{tokens:,}")
        if s.get("score") is not None:
            table.add_row("score", f"{float(s['score']):.3f}")
        if s.get("mean") is not None:
            table.add_row("last result", f"{float(s['mean']):.3f}")
        fraction = s.get("fraction")
        if fraction and fraction[0] > 0:
            done, total, _ = fraction
            eta = elapsed / done * (total - done)
            table.add_row("progress", f"{done}/{total}  ETA {eta:5.0f} s")
        for key in ("method", "run", "message", "waiting"):
            if s.get(key):
                table.add_row(key, Text(str(s[key])[:120]))
        return table


class SweepProgress:
    """One table over all cells: status, LM calls, time, and an overall ETA."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.rows: dict[str, dict[str, Any]] = {label: {"status": "pending"} for label in labels}
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> SweepProgress:
        if is_tty():
            self._live = Live(console=err_console, refresh_per_second=2, get_renderable=self._render)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            if "running" in event:
                info = event["running"]
                row = self.rows.setdefault(info.get("cell", "?"), {})
                row["status"] = "running"
                row["started"] = row.get("started") or time.perf_counter()
                for key in ("stage", "message", "method", "lm_calls", "waiting"):
                    if info.get(key) is not None:
                        row[key] = info[key]
                waiting = f" ({info['waiting']})" if info.get("waiting") else ""
                line = f"{info.get('cell')}: {info.get('stage', '')} {info.get('message', '')}".strip() + waiting
            else:
                info = event["done"]
                row = self.rows.setdefault(info.get("cell", "?"), {})
                row.update({k: v for k, v in info.items() if k != "cell"})
                line = f"{info.get('cell')}: {info.get('status')}"
                if info.get("error"):
                    line += f" ({info['error']})"
        if self._live is None and line:
            err_console.print(line, highlight=False, markup=False)

    def _render(self) -> Table:
        done = [r for r in self.rows.values() if r.get("status") in ("done", "skipped", "failed")]
        elapsed = time.perf_counter() - self.started
        remaining = len(self.rows) - len(done)
        eta = (elapsed / len(done) * remaining) if done else None
        table = Table(title=f"sweep: {len(done)}/{len(self.rows)} cells · {elapsed:.0f} s"
                            + (f" · ETA {eta:.0f} s" if eta is not None and remaining else ""))
        for column in ("cell", "status", "LM calls", "time", "detail"):
            table.add_column(column)
        for label, row in self.rows.items():
            status = str(row.get("status", ""))
            wall = row.get("wall_time_s")
            if wall is None and row.get("started"):
                wall = time.perf_counter() - row["started"]
            detail = row.get("error") or row.get("waiting") or row.get("message") or row.get("stage") or ""
            table.add_row(label, status, str(row.get("lm_calls", "")), "" if wall is None else f"{wall:.0f} s",
                          Text(str(detail)[:80]))
        return table
