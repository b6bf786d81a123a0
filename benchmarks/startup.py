"""Start-up time and memory of the CLI: ``--help``, time to the first LM call, peak RSS.

    .venv/bin/python benchmarks/startup.py [--runs 10]

* ``helm-optimizer --help``: hyperfine (``--warmup 2``) when installed, else repeated subprocess timing;
* time from starting ``helm-optimizer optimize`` (HeadQA, 80 examples, fake server in its own
  process) to the first completion request reaching the server, with an empty and with a filled
  dataset cache (the child is then stopped);
* peak RSS (``ru_maxrss`` of the child, from ``os.wait4``) while building the largest medical
  dataset (HeadQA: every train/dev question plus the 2.7k-question test split) through
  ``load_dataset(..., on_overlap="drop")`` and through ``helm-optimizer scenarios show``, and during a
  whole MIPROv2 (auto light) ``optimize`` run on the fake server.

The HeadQA rows are skipped without /work/shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA_DIR, FakeServerProcess, machine, table

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("helm-optimizer"))


def _help_times(runs: int) -> tuple[str, list[float]]:
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "h.json"
            subprocess.run([hyperfine, "--warmup", "2", "--runs", str(runs), "--export-json", str(out), "-N",
                            f"{CLI} --help"], check=True, capture_output=True)
            times = json.loads(out.read_text())["results"][0]["times"]
        return "hyperfine", [float(t) for t in times]
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        subprocess.run([CLI, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return "subprocess", times[2:]


def _run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall s, peak RSS MiB, exit status) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def _optimize_command(server: FakeServerProcess, out: Path, optimizer: str = "MIPROv2") -> list[str]:
    return [CLI, "optimize", "--scenario", "head_qa", "--model", "openai/fake-model", "--api-base",
            server.api_base, "--optimizer", optimizer, "--data-dir", str(DATA_DIR), "--limit", "80",
            "--on-overlap", "drop", "--output-dir", str(out), "--no-cache", "--force"]


def _first_call_s(server: FakeServerProcess, out: Path) -> float:
    """Seconds from spawning ``optimize`` to its first completion request at the server; then stops it."""
    server.reset()
    started = time.perf_counter()
    proc = subprocess.Popen(_optimize_command(server, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT)
    try:
        while server.stats().get("requests", 0) == 0:
            if proc.poll() is not None:
                raise SystemExit(f"optimize exited ({proc.returncode}) before any LM call")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of --help")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of the first-call and RSS figures")
    args = parser.parse_args(argv)
    print(machine())

    tool, times = _help_times(args.runs)
    print(table(["command", "tool", "runs", "mean s", "median s", "min s", "max s"],
                [["helm-optimizer --help", tool, len(times), statistics.mean(times), statistics.median(times),
                  min(times), max(times)]], title="CLI start-up"))
    print()
    if not (DATA_DIR / "head_qa").is_dir():
        print(f"skipped the HeadQA rows: no data under {DATA_DIR}")
        return 0

    with tempfile.TemporaryDirectory(prefix="hopt-bench-startup-") as tmp:
        rows = _headqa_rows(Path(tmp), args.repeat)
    print(table(["what", "run", "wall s", "peak RSS MiB"], rows, title="HeadQA: first LM call and peak memory"))
    print()
    print("peak RSS = ru_maxrss of the child process (os.wait4); wall includes interpreter start-up and imports.")
    return 0


def _headqa_rows(work: Path, repeat: int) -> list[list[object]]:
    rows: list[list[object]] = []
    with FakeServerProcess(latency=0.0) as server:
        for rep in range(repeat):
            out = work / f"first-call-{rep}"
            cold = _first_call_s(server, out)
            warm = _first_call_s(server, out)
            rows.append(["time to first LM call, empty dataset cache", rep + 1, cold, "-"])
            rows.append(["time to first LM call, dataset cached", rep + 1, warm, "-"])
        env = {**os.environ, "HELM_OPTIMIZER_CACHE_DIR": str(work / "dataset-cache")}
        load = [sys.executable, "-c", "from helm_optimizer.scenarios.dataset import load_dataset; "
                f"load_dataset('head_qa', data_dir={str(DATA_DIR)!r}, on_overlap='drop')"]
        show = [CLI, "scenarios", "show", "head_qa", "--data-dir", str(DATA_DIR)]
        for rep in range(repeat):
            shutil.rmtree(work / "dataset-cache", ignore_errors=True)
            for label, command in (("load_dataset('head_qa'), empty cache", load),
                                   ("load_dataset('head_qa'), cached", load),
                                   ("helm-optimizer scenarios show head_qa", show)):
                wall, rss, code = _run_measured(command, env)
                rows.append([label + ("" if code == 0 else f" (exit {code})"), rep + 1, wall, rss])
            server.reset()  # not counting calls of the stopped first-call runs
            wall, rss, code = _run_measured(_optimize_command(server, work / f"mipro-{rep}"))
            calls = server.completions()
            rows.append([f"optimize MIPROv2 auto light, 40/40, fake server 0 ms ({calls} calls)"
                         + ("" if code == 0 else f" (exit {code})"), rep + 1, wall, rss])
    return rows


if __name__ == "__main__":
    sys.exit(main())
