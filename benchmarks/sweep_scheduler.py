"""Sweeps at the physical limit: the serial executor vs the scheduler (and Ray) against rate-limited endpoints.

    .venv/bin/python benchmarks/sweep_scheduler.py [--executors serial,local,ray] [--latencies 0.2,0.4,0.8]
    .venv/bin/python benchmarks/sweep_scheduler.py --demo-output demo-output   # estimate_error of README command 1

2 scenarios (``sched_arith:op=add`` and ``op=mul`` from ``benchmarks/sched_plugin``, generated
arithmetic the fake server answers by itself) x 2 optimizers (BootstrapFewShotWithRandomSearch with 3
candidates, MIPROv2 light) x 3 models, each behind its own fake server process with its own latency
and enforced concurrency cap (HTTP 429 + ``Retry-After`` beyond it); every model declares that cap
and latency in its ``limits``. Each executor runs the same sweep into a fresh output directory.

Printed per executor: wall time; *ideal* = max over endpoints of (calls it answered x its latency ÷
its cap), the time no executor can beat; 429s and requests above a cap (the servers' counts); the
client's CPU (every process of this benchmark except the fake servers, in cores: CPU seconds ÷
wall seconds); whether the report table equals the serial executor's. Then, each on its own line,
``sweep_wall_over_ideal=`` (the scheduler's wall ÷ ideal) and ``estimate_error=`` (|estimated −
actual| ÷ actual LM calls over the sweep, the estimate from ``estimate_sweep`` before the run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import FakeServerProcess, machine, table

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "benchmarks" / "sched_plugin" / "sched_plugin.py"
DEMO_CONFIG = ROOT / "src" / "helm_optimizer" / "configs" / "demo.yaml"
ACCURACY, DEMO_ACCURACY = 0.6, 0.8


def sweep_config(servers: list[tuple[str, FakeServerProcess, int]], output_dir: Path, args: argparse.Namespace) -> Any:
    from helm_optimizer.sweep.config import SweepConfig

    size = f"train={args.train},valid={args.val},test={args.test}"
    return SweepConfig.model_validate({
        "output_dir": str(output_dir), "suite": "bench-scheduler", "seed": 0, "plugins": [str(PLUGIN)],
        "scenarios": [f"sched_arith:op=add,{size}", f"sched_arith:op=mul,{size}"],
        "optimizers": ["BootstrapFewShotWithRandomSearch", "MIPROv2"],
        "models": [{"model": name, "api_base": server.api_base, "num_retries": 20,
                    "limits": {"max_concurrency": cap, "latency_s": server.latency}} for name, server, cap in servers],
        "methods": ["baseline", "ZeroShotCoT"],
        "max_bootstrapped_demos": 2, "max_labeled_demos": 2, "num_threads": 8,
        "limit": 2 * args.val, "eval_limit": args.test, "auto": "light",
        "optimizer_options": {"BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 3}},
        "estimate_accuracy": DEMO_ACCURACY,  # the fake model's share of right answers with demos (bootstraps)
        "summarize": False,
    })


def rows_of(output_dir: Path) -> list[dict[str, Any]] | None:
    path = output_dir / "report" / "report.json"
    if not path.is_file():
        return None
    keep = ("scenario", "model", "method", "n", "mean", "ci_low", "ci_high", "delta", "p_value")
    rows = json.loads(path.read_text())["rows"]
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["scenario"], r["model"], r["method"]))


def agents_of(output_dir: Path) -> dict[str, bytes]:
    """Every agent file (not its metadata) by relative path."""
    root = output_dir / "agents"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))
            if not p.name.endswith(".meta.json")} if root.is_dir() else {}


class CpuMeter:
    """CPU seconds of this process and every descendant except ``exclude`` (sampled from /proc)."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> dict[int, float]:
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / self.tick
        mine, root = {}, os.getpid()
        for pid in cpu:
            chain, p = pid, pid
            while p not in (0, 1, root) and p not in self.exclude:
                p = parents.get(p, 0)
            if (p == root and chain not in self.exclude) or chain == root:
                mine[pid] = cpu[pid]
        return mine

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for pid, value in self._tree().items():
                self.seen[pid] = max(self.seen.get(pid, 0.0), value)

    def __enter__(self) -> CpuMeter:
        self.start = {pid: v for pid, v in self._tree().items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for pid, value in self._tree().items():
            self.seen[pid] = max(self.seen.get(pid, 0.0), value)

    @property
    def seconds(self) -> float:
        return sum(v - self.start.get(pid, 0.0) for pid, v in self.seen.items())


def run_one(label: str, executor: str, servers: list[tuple[str, FakeServerProcess, int]], work: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    from helm_optimizer.sweep.run import run_sweep

    out = work / label.replace(", ", "-").replace(" ", "")
    config = sweep_config(servers, out, args)
    for _, server, _ in servers:
        server.reset()
    note = ""
    exclude = {s.pid for _, s, _ in servers if s.pid is not None}
    failed = -1
    with CpuMeter(exclude) as cpu:
        started = time.perf_counter()
        try:
            if executor == "ray":
                import ray

                ray.init(num_cpus=args.ray_workers, include_dashboard=False, log_to_driver=False)
            with contextlib.redirect_stderr(io.StringIO()):
                result = run_sweep(config, executor=executor, num_workers=args.ray_workers)
            failed = len(result.failed)
            if failed:
                note = next(iter(result.cells[c].get("error") for c in result.failed))
        except Exception as exc:  # report why an executor cannot run here, then go on
            note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        finally:
            if executor == "ray" and "ray" in sys.modules:
                import ray

                ray.shutdown()
        wall = time.perf_counter() - started
    stats = [s.stats() for _, s, _ in servers]
    per_endpoint = [st.get("completions", 0) * s.latency / cap for st, (_, s, cap) in zip(stats, servers, strict=True)]
    calls = sum(st.get("completions", 0) for st in stats)
    run = {"label": label, "wall": wall, "ideal": max(per_endpoint), "calls": calls,
           "over_cap": sum(st.get("over_cap", 0) for st in stats), "cpu": cpu.seconds, "failed": failed,
           "rows": rows_of(out) if failed == 0 else None, "agents": agents_of(out), "note": note,
           "max_in_flight": [st.get("max_in_flight", 0) for st in stats]}
    print(f"  {label:<16} {wall:7.1f} s  ideal {run['ideal']:6.1f} s  {run['calls']:5d} calls  "
          f"{run['over_cap']:4d} over a cap  CPU {cpu.seconds:6.1f} s  failed {failed} {note}", flush=True)
    return run


def demo_error(output_dir: Path) -> None:
    """estimate_error of README command 1: the demo config's estimate vs the LM calls its run left."""
    from helm_optimizer.sweep.config import load_sweep_config
    from helm_optimizer.sweep.estimate import estimate_sweep
    from helm_optimizer.sweep.estimate_report import actual_usage

    data = Path(str(ROOT / "src" / "helm_optimizer" / "data" / "demo"))
    config = load_sweep_config(DEMO_CONFIG).model_copy(update={"output_dir": output_dir, "data_dir": data})
    estimate = estimate_sweep(config)
    actual = actual_usage(config)
    rows = [[c.label, round(c.lm_calls or 0), actual.get(c.label, {}).get("lm_calls")] for c in estimate.cells]
    print(table(["cell", "estimated calls", "actual calls"], rows, title=f"README command 1 ({DEMO_CONFIG.name})"))
    total = sum(r[2] or 0 for r in rows)
    est = estimate.lm_calls or 0.0
    print(f"demo_estimated_lm_calls={est:.0f} demo_actual_lm_calls={total}")
    print(f"estimate_error={abs(est - total) / total:.3f}" if total else "estimate_error=unknown (no actual calls)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", default="serial,local,ray")
    parser.add_argument("--latencies", default="0.2,0.4,0.8", help="seconds per answer of the three endpoints")
    parser.add_argument("--caps", default="4,8,8", help="concurrency caps of the three endpoints")
    parser.add_argument("--train", type=int, default=24, help="train (and valid, test) instances per scenario")
    parser.add_argument("--val", type=int, default=8, help="validation examples per optimization cell")
    parser.add_argument("--test", type=int, default=16, help="test instances evaluated per scenario")
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--demo-output", type=Path, help="only compare the demo config's estimate with this run")
    args = parser.parse_args(argv)

    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()
    if args.demo_output is not None:
        demo_error(args.demo_output)
        return 0
    print(machine())
    latencies = [float(x) for x in args.latencies.split(",")]
    caps = [int(x) for x in args.caps.split(",")]
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="hopt-bench-sched-") as tmp:
        servers = []
        for i, (latency, cap) in enumerate(zip(latencies, caps, strict=True)):
            server = stack.enter_context(FakeServerProcess(latency=latency, accuracy=ACCURACY,
                                                           demo_accuracy=DEMO_ACCURACY, seed=1,
                                                           max_concurrency=cap, cap_retry_after=1.0))
            servers.append((f"openai/fake-{'abc'[i]}", server, cap))
        work = Path(tmp)
        from helm_optimizer.sweep.config import validate_sweep
        from helm_optimizer.sweep.estimate import estimate_sweep
        from helm_optimizer.sweep.scheduler import warm_up

        warm_up()  # the local executor's worker template loads HELM and DSPy once per process, as the CLI does
        probe = sweep_config(servers, work / "estimate", args)
        validate_sweep(probe)  # warm: HELM's configs and plugins are loaded before any timing
        estimate = estimate_sweep(probe)
        print(f"  estimate: {estimate.lm_calls:.0f} LM calls, wall {estimate.wall_s:.1f} s at the declared limits")
        plans = {"serial": ("serial (today)", "serial"), "local": ("scheduler", "local"),
                 "ray": (f"ray, {args.ray_workers} workers", "ray")}
        runs = [run_one(*plans[name], servers, work, args) for name in args.executors.split(",") if name in plans]
    reference = next((r for r in runs if r["label"].startswith("serial")), None)
    rows = []
    for run in runs:
        if run["rows"] is None or reference is None or reference["rows"] is None:
            same = "-"
        else:
            same = "yes" if (run["rows"], run["agents"]) == (reference["rows"], reference["agents"]) else "NO"
        rows.append([run["label"], run["wall"], run["ideal"], run["wall"] / run["ideal"], run["calls"], run["over_cap"],
                     run["over_cap"], run["cpu"] / run["wall"], run["failed"], same, run["note"][:60]])
    print()
    title = (f"2 scenarios x 2 optimizers x 3 models; endpoints {args.latencies} s with caps {args.caps}; "
             f"{args.val} validation examples, {args.test} test instances per scenario")
    print(table(["executor", "wall s", "ideal s", "wall/ideal", "LM calls", "429s", "requests above a cap",
                 "client CPU (cores)", "failed cells", "agents and table equal to serial", "note"], rows, title=title))
    print()
    scheduler = next((r for r in runs if r["label"] == "scheduler"), None)
    if scheduler is not None:
        print(f"sweep_wall_over_ideal={scheduler['wall'] / scheduler['ideal']:.3f}")
        print(f"requests_above_cap={scheduler['over_cap']}")
        error = abs((estimate.lm_calls or 0.0) - scheduler["calls"]) / scheduler["calls"]
        print(f"estimate_error={error:.3f}  (estimated {estimate.lm_calls:.0f}, actual {scheduler['calls']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
