"""Peak memory and model-server processes of README command 1 (``helm-optimizer demo``): prints figures.

    .venv/bin/python benchmarks/demo_memory.py [--output-dir DIR] [--interval 0.25] [-- extra demo args]

Runs ``helm-optimizer demo`` under ``/usr/bin/time -v`` (when present) and samples its whole process
tree from ``/proc`` every ``--interval`` seconds: the peak of the tree's summed resident memory
(RSS), the peak of each process, and how many embedded llama.cpp server processes
(``helm_optimizer.serving._embedded_main``) were ever alive and at once. RSS counts shared pages
once per process, so the sum is an upper bound of what the tree holds. Exits 1 when the tree
peaked over ``--limit-mb`` or more than one server ran at once, 2 when the demo failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER_MODULE = "helm_optimizer.serving._embedded_main"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] is the parent pid
    return tree


def _descendants(root: int) -> list[int]:
    tree = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _label(command: str) -> str:
    if SERVER_MODULE in command:
        return "embedded model server"
    if "helm-optimizer" in command or "helm_optimizer" in command:
        return "helm-optimizer (main)"
    if "summarize" in command:
        return "helm-summarize"
    return command.split(" ", 1)[0].rsplit("/", 1)[-1] or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--limit-mb", type=float, default=1200.0)
    parser.add_argument("demo_args", nargs="*")
    args = parser.parse_args()
    entry = Path(sys.executable).with_name("helm-optimizer")
    command = [str(entry)] if entry.is_file() else [sys.executable, "-m", "helm_optimizer.cli.main"]
    with tempfile.TemporaryDirectory() as scratch:
        out = args.output_dir or Path(scratch) / "demo-output"
        time_log = Path(scratch) / "time.txt"
        wrapper = ["/usr/bin/time", "-v", "-o", str(time_log)] if shutil.which("time") or Path(
            "/usr/bin/time").is_file() else []
        env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(Path(scratch) / "cache")}
        started = time.perf_counter()
        child = subprocess.Popen([*wrapper, *command, "demo", "--output-dir", str(out), *args.demo_args],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        peak_total, peak_at = 0.0, 0.0
        per_label: dict[str, float] = {}
        servers_seen: set[int] = set()
        servers_at_once = 0
        while child.poll() is None:
            pids = [p for p in _descendants(child.pid) if p != child.pid or not wrapper]
            rss = {p: _rss_mb(p) for p in pids}
            total = sum(rss.values())
            if total > peak_total:
                peak_total, peak_at = total, time.perf_counter() - started
            servers = [p for p in pids if SERVER_MODULE in _cmdline(p)]
            servers_seen.update(servers)
            servers_at_once = max(servers_at_once, len(servers))
            for pid, value in rss.items():
                label = _label(_cmdline(pid))
                per_label[label] = max(per_label.get(label, 0.0), value)
            time.sleep(args.interval)
        output = child.stdout.read() if child.stdout else ""
        wall = time.perf_counter() - started
        time_text = time_log.read_text() if time_log.is_file() else ""
    max_rss_line = next((line.strip() for line in time_text.splitlines() if "Maximum resident" in line), "")
    print(f"demo exit code        {child.returncode}")
    print(f"wall time             {wall:.1f} s")
    print(f"peak tree RSS (sum)   {peak_total:.0f} MB at {peak_at:.0f} s (limit {args.limit_mb:.0f} MB)")
    for label, value in sorted(per_label.items(), key=lambda kv: -kv[1]):
        print(f"  peak of one {label:24} {value:.0f} MB")
    print(f"model server processes: {len(servers_seen)} in all, at most {servers_at_once} at once")
    if max_rss_line:
        print(f"/usr/bin/time -v      {max_rss_line} (largest single process, KB)")
    if child.returncode != 0:
        print(output[-3000:])
        return 2
    return 0 if peak_total <= args.limit_mb and servers_at_once <= 1 and len(servers_seen) <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
