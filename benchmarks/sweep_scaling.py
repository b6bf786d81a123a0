"""The same small sweep with the local executor and with Ray (1 and 2 workers): wall time, equal tables.

    .venv/bin/python benchmarks/sweep_scaling.py [--latency 0.05] [--workers 1,2]

2 scenarios (HeadQA from the bundled demo data, Medbullets from /work/shared/data or the test
fixtures) x 2 optimizers (LabeledFewShot, BootstrapFewShotWithRandomSearch with 2 candidates) x 2
models (``openai/fake-a``, ``openai/fake-b``) with 8 optimization examples and 8 evaluated test
instances per scenario, against the fake server in its own process
(``python -m helm_optimizer.serving.fake --port-file F --latency 0.05``; Nagle disabled unless
``--server-as-shipped``). Each executor writes its own output directory from scratch; the report
tables (``report/report.json`` rows) must be identical. Ray needs ``pip install 'ray>=2.40,<3'``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DATA_DIR, FakeServerProcess, machine, table

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "src" / "helm_optimizer" / "data" / "demo"
FIXTURE_DATA = ROOT / "tests" / "fixtures" / "medical"


def sweep_config(api_base: str, output_dir: Path) -> Any:
    from helm_optimizer.sweep.config import SweepConfig

    medbullets = DATA_DIR if (DATA_DIR / "medbullets").is_dir() else FIXTURE_DATA
    return SweepConfig.model_validate({
        "output_dir": str(output_dir), "suite": "bench-sweep", "seed": 0,
        "scenarios": [{"entry": "head_qa", "data_dir": str(DEMO_DATA)},
                      {"entry": "medbullets", "data_dir": str(medbullets)}],
        "optimizers": ["LabeledFewShot", "BootstrapFewShotWithRandomSearch"],
        "models": [{"model": "openai/fake-a", "api_base": api_base}, {"model": "openai/fake-b", "api_base": api_base}],
        "methods": ["baseline", "ZeroShotCoT"],
        "max_bootstrapped_demos": 1, "max_labeled_demos": 2, "num_threads": 4, "limit": 8, "eval_limit": 8,
        "optimizer_options": {"BootstrapFewShotWithRandomSearch": {"num_candidate_programs": 2}},
        "summarize": False,
    })


def rows_of(output_dir: Path) -> list[dict[str, Any]]:
    rows = json.loads((output_dir / "report" / "report.json").read_text())["rows"]
    keep = ("scenario", "model", "method", "n", "mean", "ci_low", "ci_high", "delta", "p_value")
    return sorted(({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["scenario"], r["model"], r["method"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", default="1,2", help="Ray worker counts to try")
    parser.add_argument("--server-as-shipped", action="store_true",
                        help="do not disable Nagle in the fake server (adds ~40 ms per call on keep-alive)")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()

    print(machine())
    with tempfile.TemporaryDirectory(prefix="hopt-bench-sweep-") as tmp:
        return _compare(Path(tmp), args, workers)


def _compare(work: Path, args: argparse.Namespace, workers: list[int]) -> int:
    from helm_optimizer.sweep.run import run_sweep

    runs: list[tuple[str, float, int, int, list[dict[str, Any]] | None, str]] = []
    with FakeServerProcess(latency=args.latency, accuracy=0.5, demo_accuracy=0.8, seed=1,
                           nodelay=not args.server_as_shipped) as server:
        plans: list[tuple[str, str, int | None]] = [("local", "local", None)]
        plans += [(f"ray, {n} worker{'s' if n > 1 else ''}", "ray", n) for n in workers]
        for label, executor, n in plans:
            out = work / label.replace(", ", "-").replace(" ", "")
            config = sweep_config(server.api_base, out)
            server.reset()
            note = ""
            started = time.perf_counter()
            try:
                if executor == "ray":
                    import ray

                    ray_started = time.perf_counter()
                    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
                    note = f"ray.init {time.perf_counter() - ray_started:.1f} s"
                with contextlib.redirect_stderr(io.StringIO()):  # progress bars of the cells
                    result = run_sweep(config, executor=executor, num_workers=n)
                failed = len(result.failed)
            except Exception as exc:  # report why an executor cannot run here, then go on
                failed = -1
                note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            finally:
                if executor == "ray" and "ray" in sys.modules:
                    import ray

                    ray.shutdown()
            wall = time.perf_counter() - started
            rows = rows_of(out) if failed == 0 else None
            runs.append((label, wall, server.completions(), failed, rows, note))
            print(f"  {label:<16} {wall:7.1f} s  {server.completions():5d} LM calls  failed cells {failed}", flush=True)
    reference = runs[0][4]
    table_rows = []
    for label, wall, calls, failed, rows, note in runs:
        same = "-" if rows is None or reference is None else ("yes" if rows == reference else "NO")
        table_rows.append([label, wall, runs[0][1] / wall, calls, failed, len(rows or []), same, note])
    print()
    print(table(["executor", "wall s", "speed-up vs local", "LM calls", "failed cells", "table rows",
                 "table equal to local", "note"], table_rows,
                title="2 scenarios x 2 optimizers x 2 models, 8 optimization examples, 8 test instances"))
    print()
    print("Each run starts from an empty output directory; wall includes Ray start-up and HELM runs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
