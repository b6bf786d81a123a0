"""Live progress displays driven by the event dicts the library emits.

Both displays route other libraries' prints and tqdm bars to the log while they are open (see
:mod:`helm_optimizer.cli.capture`). In a terminal they redraw a rich table; otherwise they print one
short line per event.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from helm_optimizer.cli._common import err_console, is_tty
from helm_optimizer.cli.capture import foreign_output_to_log

__all__ = ["LiveProgress", "RowSpec", "SweepProgress", "format_result"]

_FRACTION = re.compile(r"(\d+)/(\d+)")
_FINISHED = ("done", "skipped", "failed")
_RATE_WINDOW_S = 120.0
_DETAIL = 90


def _short_method(method: str) -> str:
    from helm_optimizer.naming import METHOD_BASELINE, method_slug

    return method if method == METHOD_BASELINE else method_slug(method)


def _score(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def format_result(kind: str, row: dict[str, Any]) -> str:
    """What a finished row shows: validation before → after, each method's main metric, or the path."""
    if row.get("status") == "failed":
        return str(row.get("error") or "failed").strip().splitlines()[0][:_DETAIL]
    if kind == "optimize":
        if row.get("val_before") is None and row.get("val_after") is None:
            return ""
        return f"val {_score(row.get('val_before'))} → {_score(row.get('val_after'))}"
    if kind == "evaluate":
        means = row.get("means") or {}
        metric = f"{row['metric']}: " if row.get("metric") else ""
        return metric + " · ".join(f"{_short_method(m)} {_score(v)}" for m, v in means.items())
    if row.get("status") == "skipped":
        return str(row.get("error") or "")
    return str(row.get("path") or "")


def _tokens(row: dict[str, Any]) -> str:
    tokens = int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)
    text = f"{tokens:,}" if tokens else ""
    if row.get("cost"):
        text += f" · ${float(row['cost']):.4f}"
    return text


@dataclass(frozen=True)
class RowSpec:
    """One row of the sweep display: its label, kind (optimize/evaluate/final) and estimated LM calls."""

    label: str
    kind: str
    estimate: int | None = None


@dataclass
class _Row:
    spec: RowSpec
    data: dict[str, Any] = field(default_factory=lambda: {"status": "pending"})
    calls_base: int = 0  # calls of earlier folds (the optimizer's meter restarts per fold)
    last_calls: int = 0
    printed_stage: str = ""

    @property
    def calls(self) -> int:
        return self.calls_base + self.last_calls


class SweepProgress:
    """One table over all cells: status, LM calls, tokens/cost, time and result; ETA from the work left."""

    def __init__(self, rows: Sequence[RowSpec | str]) -> None:
        specs = [r if isinstance(r, RowSpec) else RowSpec(r, r.split(" ", 1)[0]) for r in rows]
        self.rows: dict[str, _Row] = {s.label: _Row(s) for s in specs}
        self.started = time.perf_counter()
        self.tty = is_tty()
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._stack = ExitStack()
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    # -- context --------------------------------------------------------------------------------
    def __enter__(self) -> SweepProgress:
        self._stack.enter_context(foreign_output_to_log())
        if self.tty:
            self._live = Live(console=err_console, refresh_per_second=2, get_renderable=self._render,
                              redirect_stdout=False, redirect_stderr=False, transient=False)
            self._stack.enter_context(self._live)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            with self._lock:  # an interrupted sweep: nothing is left "running"
                for row in self.rows.values():
                    if row.data.get("status") in ("running", "pending"):
                        row.data["status"] = "failed" if row.data.get("status") == "running" else "skipped"
                        row.data.setdefault("error", "interrupted" if exc_type is KeyboardInterrupt
                                            else "not run: the sweep stopped")
        self._stack.close()

    # -- events -------------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            line = self._running(event["running"]) if "running" in event else self._done(event["done"])
            self._samples.append((time.perf_counter(), self.total_calls()))
        if not self.tty and line:
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)

    def _row(self, label: str) -> _Row:
        if label not in self.rows:
            self.rows[label] = _Row(RowSpec(label, label.split(" ", 1)[0]))
        return self.rows[label]

    def _running(self, info: dict[str, Any]) -> str:
        row = self._row(str(info.get("cell", "?")))
        data = row.data
        first = data.get("status") != "running"
        data["status"] = "running"
        data.setdefault("started", time.perf_counter())
        for key in ("stage", "message", "method"):
            if info.get(key) is not None:
                data[key] = info[key]
        data["waiting"] = info.get("waiting")  # calls waiting on a silent endpoint (None: nothing waits)
        if row.spec.kind == "evaluate":
            if info.get("stage") == "evaluated":
                row.calls_base += int(info.get("lm_calls") or 0)
                for key in ("prompt_tokens", "completion_tokens"):
                    data[key] = int(data.get(key) or 0) + int(info.get(key) or 0)
                data.setdefault("means", {})[str(info.get("method"))] = info.get("mean")
        elif info.get("lm_calls") is not None:
            calls = int(info["lm_calls"])
            if calls < row.last_calls:  # a new fold's meter
                row.calls_base += row.last_calls
            row.last_calls = calls
            for key in ("prompt_tokens", "completion_tokens", "cost"):
                if info.get(key) is not None:
                    data[key] = info[key]
        stage = str(info.get("stage") or "")
        if info.get("method"):
            stage = f"{stage} {info['method']}".strip()
        if first or (stage and stage != row.printed_stage):
            row.printed_stage = stage or row.printed_stage
            return f"{self._position(row)} {row.spec.label}: {stage or 'started'}"
        return ""

    def _done(self, info: dict[str, Any]) -> str:
        row = self._row(str(info.get("cell", "?")))
        row.data.update({k: v for k, v in info.items() if k != "cell"})
        if info.get("lm_calls") is not None:
            row.calls_base, row.last_calls = int(info["lm_calls"]), 0
        status = str(row.data.get("status"))
        parts = [f"{self._position(row)} {row.spec.label}: {status}"]
        if row.data.get("wall_time_s") is not None:
            parts.append(f"{float(row.data['wall_time_s']):.0f} s")
        if row.calls:
            parts.append(f"{row.calls} LM calls")
        result = format_result(row.spec.kind, row.data)
        if result:
            parts.append(result)
        line = " · ".join(parts)
        if status == "failed":
            line += " (details in the log)"
        return line

    def _position(self, row: _Row) -> str:
        labels = list(self.rows)
        return f"[{labels.index(row.spec.label) + 1}/{len(labels)}]"

    # -- figures ------------------------------------------------------------------------------
    def total_calls(self) -> int:
        return sum(r.calls for r in self.rows.values())

    def eta(self) -> tuple[float | None, bool]:
        """Seconds left (calls still to make ÷ calls per second over the last two minutes), and whether
        some unfinished cell has no estimate (the ETA is then a lower bound)."""
        remaining, unknown = 0, False
        for row in self.rows.values():
            if row.data.get("status") in _FINISHED or row.spec.kind not in ("optimize", "evaluate"):
                continue
            if row.spec.estimate is None:
                unknown = True
            else:
                remaining += max(0, row.spec.estimate - row.calls)
        now = time.perf_counter()
        while len(self._samples) > 2 and now - self._samples[0][0] > _RATE_WINDOW_S:
            self._samples.popleft()
        if not self._samples:
            return None, unknown
        t0, c0 = self._samples[0]
        calls, span = self.total_calls() - c0, now - t0
        if remaining == 0:
            return (0.0 if not unknown else None), unknown
        if calls <= 0 or span < 5.0:
            return None, unknown
        return remaining / (calls / span), unknown

    def _title(self) -> str:
        finished = sum(1 for r in self.rows.values() if r.data.get("status") in _FINISHED)
        elapsed = time.perf_counter() - self.started
        eta, lower_bound = self.eta()
        if finished == len(self.rows):
            eta_text = "finished"
        elif eta is None:
            eta_text = "ETA —"
        else:
            eta_text = f"ETA {'≥ ' if lower_bound else ''}{eta:.0f} s"
        return (f"sweep: {finished}/{len(self.rows)} cells · {elapsed:.0f} s · {self.total_calls()} LM calls · "
                f"{eta_text}")

    def _render(self) -> Table:
        with self._lock:
            table = Table(title=self._title(), title_justify="left")
            for column in ("cell", "status", "LM calls", "tokens · cost", "time", "result"):
                table.add_column(column, overflow="fold")
            for label, row in self.rows.items():
                data = row.data
                status = str(data.get("status", ""))
                wall = data.get("wall_time_s")
                if wall is None and data.get("started") and status == "running":
                    wall = time.perf_counter() - data["started"]
                if status in _FINISHED:
                    detail = format_result(row.spec.kind, data)
                else:
                    detail = str(data.get("message") or data.get("stage") or "")
                    if data.get("method") and row.spec.kind == "evaluate":
                        detail = f"{data.get('stage', '')} {_short_method(str(data['method']))}".strip()
                    if data.get("waiting"):
                        detail = f"{detail} ({data['waiting']})".strip()
                style = {"done": "green", "failed": "red", "skipped": "dim", "running": "yellow"}.get(status, "")
                table.add_row(label, Text(status, style=style), str(row.calls) if row.calls else "",
                              _tokens(data), "" if wall is None else f"{float(wall):.0f} s",
                              Text(detail[:_DETAIL]))
            return table


class LiveProgress:
    """Shows stage, elapsed time, LM calls, calls/s, tokens, latest score and an ETA where one is known."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.perf_counter()
        self.state: dict[str, Any] = {"stage": "starting"}
        self.tty = is_tty()
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._stack = ExitStack()
        self._last_plain = ""

    def __enter__(self) -> LiveProgress:
        self._stack.enter_context(foreign_output_to_log())
        if self.tty:
            self._live = Live(console=err_console, refresh_per_second=4, transient=False,
                              get_renderable=self._render, redirect_stdout=False, redirect_stderr=False)
            self._stack.enter_context(self._live)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self.state["stage"] = "done" if exc_type is None else "stopped"
        self._stack.close()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.state.update({k: v for k, v in event.items() if v is not None})
            if not event.get("waiting"):
                self.state.pop("waiting", None)
            message = str(event.get("message") or "")
            match = _FRACTION.search(message)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                first = self.state.get("fraction")
                since = first[2] if first and first[1] == total else time.perf_counter()
                self.state["fraction"] = (done, total, since)
            line = self._plain()
        if not self.tty and line != self._last_plain:
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
            self._last_plain = line

    def _plain(self) -> str:
        s = self.state
        parts = [f"[{self.title}] {s.get('stage', '')}"]
        for key in ("method", "message", "waiting"):
            if s.get(key):
                parts.append(str(s[key])[:_DETAIL])
        if "lm_calls" in s:
            parts.append(f"{s['lm_calls']} LM calls")
        return " · ".join(parts)

    def _render(self) -> Table:
        with self._lock:
            s = dict(self.state)
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
            table.add_row("tokens", f"{tokens:,}" + (f" · ${float(s['cost']):.4f}" if s.get("cost") else ""))
        if s.get("score") is not None:
            table.add_row("score", f"{float(s['score']):.3f}")
        if s.get("mean") is not None:
            table.add_row("last result", f"{float(s['mean']):.3f}")
        fraction = s.get("fraction")
        if fraction and fraction[0] > 0:
            done, total, since = fraction
            eta = (time.perf_counter() - since) / done * (total - done)  # the steps left at the recent pace
            table.add_row("progress", f"{done}/{total}  ETA {eta:5.0f} s")
        for key in ("method", "run", "message", "waiting"):
            if s.get(key):
                table.add_row(key, Text(str(s[key])[:120]))
        return table
