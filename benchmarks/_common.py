"""Shared pieces of the benchmark scripts: the fake server as a process, data, tables.

Not a test module and not part of the package: the scripts in this folder import it by name
(``python benchmarks/<script>.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path("/work/shared/data")

# The fake server's handler writes the status line + headers and the body in two ``send`` calls;
# on a keep-alive connection the second waits for the client's delayed ACK (Nagle), which adds
# ~40 ms to every request. Real servers (uvicorn, llama.cpp, OpenAI) set TCP_NODELAY; so do we,
# in the server process only, unless --server-as-shipped asks for the module exactly as it is.
_NODELAY_BOOT = (
    "import http.server, sys; http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True; "
    "from helm_optimizer.serving.fake import main; main(sys.argv[1:])"
)
_SHIPPED_BOOT = "import sys; from helm_optimizer.serving.fake import main; main(sys.argv[1:])"


def machine() -> str:
    cores = os.cpu_count() or 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()} · {cores} CPU cores · Python {platform.python_version()} · "
            f"load average at start {load:.2f} · {time.strftime('%Y-%m-%d %H:%M %Z')}")


class FakeServerProcess:
    """``python -m helm_optimizer.serving.fake`` in its own process (so it never competes for our GIL)."""

    def __init__(self, *, latency: float, accuracy: float = 1.0, demo_accuracy: float | None = None,
                 answers: dict[str, str] | None = None, nodelay: bool = True, seed: int = 0,
                 max_concurrency: int | None = None, cap_retry_after: float = 1.0) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="hopt-bench-fake-"))
        args = ["--port-file", str(self._dir / "port"), "--latency", str(latency), "--accuracy", str(accuracy),
                "--seed", str(seed)]
        if max_concurrency is not None:
            args += ["--max-concurrency", str(max_concurrency), "--cap-retry-after", str(cap_retry_after)]
        if demo_accuracy is not None:
            args += ["--demo-accuracy", str(demo_accuracy)]
        if answers:
            (self._dir / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
            args += ["--answers", str(self._dir / "answers.json")]
        self.nodelay = nodelay
        self.latency = latency
        self._args = [sys.executable, "-c", _NODELAY_BOOT if nodelay else _SHIPPED_BOOT, *args]
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> FakeServerProcess:
        self._proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        port_file = self._dir / "port"
        while not port_file.exists():
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"fake server exited: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start within 60 s")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=10) as response:
            data: dict[str, int] = json.loads(response.read())
        return data

    def completions(self) -> int:
        return int(self.stats().get("completions", 0))

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base_url}/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


@dataclass
class Data:
    name: str
    train: list[Any]
    val: list[Any]
    metric: Any
    answers: dict[str, str]
    note: str
    feedback_metric: Any = None  # GEPA's (gold, pred, trace, pred_name, pred_trace) -> score and feedback


def headqa_or_synthetic(*, train: int = 40, val: int = 40, data_dir: Path = DATA_DIR) -> Data:
    """HeadQA (HELM prompts, HELM metric) from ``data_dir``, else a synthetic arithmetic set."""
    if (data_dir / "head_qa").is_dir():
        from helm_optimizer.scenarios.dataset import load_dataset

        ds = load_dataset("head_qa", data_dir=str(data_dir), limit=train + val, val_size=val, train_size=train,
                          on_overlap="drop")
        examples = [*ds.train, *ds.val]
        return Data("head_qa", list(ds.train), list(ds.val), ds.dspy_metric(),
                    {ex["inputs"]: ex["output"] for ex in examples},
                    f"HeadQA from {data_dir} ({len(ds.train)} train / {len(ds.val)} val), HELM metric",
                    ds.feedback_metric())
    print(f"(no HeadQA under {data_dir}: using a synthetic arithmetic set instead)")
    import dspy

    def make(i: int) -> Any:
        a, b = 3 + 7 * i, 11 + 5 * i
        return dspy.Example(inputs=f"What is {a} + {b}?", output=str(a + b)).with_inputs("inputs")

    examples = [make(i) for i in range(train + val)]

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        return float(str(getattr(pred, "output", "")).strip() == example["output"])

    def feedback(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        score = metric(gold, pred)
        return dspy.Prediction(score=score, feedback="Correct." if score else f"The answer is {gold['output']}.")

    return Data("arithmetic", examples[:train], examples[train:], metric,
                {ex["inputs"]: ex["output"] for ex in examples},
                f"synthetic arithmetic ({train} train / {val} val), exact match", feedback)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (readable in a terminal, pasteable into docs)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
