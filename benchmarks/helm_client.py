"""Our HELM ``AgentClient`` against HELM's own ``DSPyClient``: the same agent, instances and fake server.

    .venv/bin/python benchmarks/helm_client.py [--instances 40] [--latency 0.1] [--threads 4]

Both deployments live in one ``prod_env`` each and run through real HELM runs
(``helm_optimizer.run_benchmark``, i.e. HELM's ``Runner``) on ``hopt_head_qa`` (HeadQA test
instances from /work/shared/data; the run is skipped without them), with the same ``num_threads``:

* ``DSPyClient``: ``dspy_agent_url: file://<dir>/{scenario}.json`` (HELM fetches it with
  ``urllib.request.urlretrieve``, which reads ``file://`` URLs), ``dspy_module: ChainOfThought``,
  ``dspy_api_model``/``dspy_api_base`` at the fake server;
* ``AgentClient``: ``agent_path`` to the same file, ``lm`` at the same server.

The agent is ``ChainOfThought("inputs -> output")`` with three HeadQA training questions as demos.
Each run is a fresh process (as ``helm-run`` is): cold; warm (the identical run again: same
``prod_env``, so HELM's request cache persists, and the same ``DSPY_CACHEDIR``, so DSPy's own LM disk
cache does too); and warm with a fresh ``DSPY_CACHEDIR`` (HELM's cache only, as on another machine or
with DSPy's cache cleared). "LM calls" is the fake server's count; "wall" is measured around
``run_benchmark`` in the child (imports excluded), "process" around the whole child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DATA_DIR, FakeServerProcess, machine, table

CLIENTS = ("DSPyClient", "AgentClient")
PHASES = ("cold", "warm", "warm, fresh DSPy cache")
MODEL = "openai/fake-model"


def _deployment(client: str, api_base: str, agent: Path) -> Any:
    from helm_optimizer.helm.deployments import APPROX_TOKENIZER, DeploymentSet, core_set

    name = f"bench/{client.lower()}"
    if client == "DSPyClient":
        spec = {"class_name": "helm.clients.dspy_client.DSPyClient",
                "args": {"dspy_agent_url": f"file://{agent.parent}/{{scenario}}.json", "dspy_module": "ChainOfThought",
                         "dspy_api_model": MODEL, "dspy_api_base": api_base, "api_key": "not-needed"}}
    else:
        spec = {"class_name": "helm_optimizer.plugin.agent_client.AgentClient",
                "args": {"method": "bench-agent", "model": MODEL, "lm": {"model": MODEL, "api_base": api_base},
                         "agent_path": str(agent), "program": "cot"}}
    return DeploymentSet(
        model_deployments=[{"name": name, "model_name": name, "tokenizer_name": APPROX_TOKENIZER,
                            "max_sequence_length": 128_000, "client_spec": spec}],
        models=[{"name": name, "display_name": name, "description": f"{client} benchmark deployment",
                 "creator_organization_name": "bench", "access": "open", "release_date": None,
                 "tags": ["TEXT_MODEL_TAG", "LIMITED_FUNCTIONALITY_TEXT_MODEL_TAG",
                          "INSTRUCTION_FOLLOWING_MODEL_TAG"]}],
        tokenizer_configs=list(core_set().tokenizer_configs),
    )


def _write_agent(path: Path) -> None:
    import dspy

    from helm_optimizer.scenarios.dataset import load_dataset

    ds = load_dataset("head_qa", data_dir=str(DATA_DIR), train_size=3, val_size=1, on_overlap="drop")
    program = dspy.ChainOfThought("inputs -> output")
    program.predict.demos = list(ds.train[:3])
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))


def child(args: argparse.Namespace) -> int:
    """One HELM run in this process; prints a JSON line with its figures."""
    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()
    from helm_optimizer import run_benchmark

    entry = f"hopt_head_qa:data_dir={DATA_DIR},eval_limit={args.instances},model=bench/{args.client.lower()}"
    started = time.perf_counter()
    result = run_benchmark([entry], suite=args.suite, max_eval_instances=args.instances,
                           output_path=args.output, local_path=args.prod_env, num_threads=args.threads)
    wall = time.perf_counter() - started
    run = result.runs[0]
    stat = run.stat("exact_match") or {}
    count = (run.stat("num_instances") or {}).get("sum")
    print(json.dumps({"wall": wall, "exact_match": stat.get("mean"), "instances": count}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2, help="cold+warm pairs per client (fresh caches each)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server-as-shipped", action="store_true",
                        help="do not disable Nagle in the fake server (adds ~40 ms per call on keep-alive)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--suite", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--prod-env", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not (DATA_DIR / "head_qa").is_dir():
        print(f"skipped: no HeadQA data under {DATA_DIR} (the HELM runs need its test split)")
        return 0

    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()

    print(machine())
    with tempfile.TemporaryDirectory(prefix="hopt-bench-helm-client-") as tmp:
        return _compare(Path(tmp), args)


def _compare(work: Path, args: argparse.Namespace) -> int:
    from helm_optimizer.helm.deployments import write_prod_env

    agent = work / "agents" / "hopt_head_qa.json"
    _write_agent(agent)
    print(f"{args.instances} hopt_head_qa test instances; num_threads {args.threads}; fake server "
          f"latency {args.latency * 1000:.0f} ms, Nagle {'as shipped' if args.server_as_shipped else 'disabled'}")
    rows = []
    with FakeServerProcess(latency=args.latency, nodelay=not args.server_as_shipped) as server:
        for rep, client in [(r, c) for r in range(args.repeat) for c in CLIENTS]:
            base = work / f"{client}-{rep + 1}"
            write_prod_env(base / "prod_env", _deployment(client, server.api_base, agent))
            for phase in PHASES:
                # "warm, fresh DSPy cache": HELM's request cache kept, DSPy's LM disk cache new (another machine).
                cache = base / ("dspy_cache_2" if phase == PHASES[2] else "dspy_cache")
                env = {**os.environ, "DSPY_CACHEDIR": str(cache)}
                server.reset()
                command = [sys.executable, __file__, "--child", "--client", client, "--suite", phase,
                           "--output", str(base / "benchmark_output"), "--prod-env", str(base / "prod_env"),
                           "--instances", str(args.instances), "--threads", str(args.threads)]
                started = time.perf_counter()
                proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                process_wall = time.perf_counter() - started
                if proc.returncode != 0:
                    print(proc.stdout[-3000:], proc.stderr[-3000:])
                    raise SystemExit(f"{client} {phase} run failed")
                figures = json.loads(proc.stdout.strip().splitlines()[-1])
                calls = server.completions()
                ideal = calls * args.latency / args.threads
                rows.append([client, phase, rep + 1, int(figures["instances"] or 0), calls, figures["wall"],
                             process_wall, ideal, figures["exact_match"]])
                print(f"  {client:<12} {phase:<22} {figures['wall']:6.2f} s  {calls:4d} calls", flush=True)
    print()
    rows.sort(key=lambda r: (CLIENTS.index(r[0]), PHASES.index(r[1]), r[2]))
    headers = ["client", "run", "pair", "instances", "LM calls", "wall s", "process s", "ideal s", "exact_match"]
    print(table(headers, rows, title="HELM runs through each client (same agent, instances, server, num_threads)"))
    print()
    print("ideal = LM calls x latency / num_threads. Both clients send the same prompt to the same program; "
          "exact_match must agree.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
