"""Wall time and LM calls of our optimizers against plain DSPy ``compile``, in one run.

    .venv/bin/python benchmarks/optimize_throughput.py [--latency 0.1] [--threads 8] [--repeat 2]
        [--accuracy 0.15] [--server-as-shipped] [--no-pipeline] [--no-cached-reference]

For ``BootstrapFewShotWithRandomSearch``, ``MIPROv2`` (auto light) and ``GEPA`` (auto light) on
HeadQA, 40 train / 40 val (HELM prompts and metric; a synthetic arithmetic set when
/work/shared/data is absent), against the fake OpenAI-compatible server in its own process with a
fixed latency:

* reference: ``dspy.<Optimizer>(...).compile(dspy.ChainOfThought("inputs -> output"), ...)`` with
  max_bootstrapped_demos=3, max_labeled_demos=3, num_threads=8 (MIPROv2: seed=0, as ours; GEPA:
  the HELM feedback metric, reflection_lm = the same LM, seed=0, as ours);
* ours: the registered optimizer class, called as ``optimize()`` calls it (same LM object as
  ``build_lm`` makes, same DSPy context), measured around ``compile`` only, like the reference;
* ours, whole ``optimize()`` pipeline: also evaluates the program before and after (2 x val calls
  the reference does not make) and writes the agent; reported separately;
* reference once more with DSPy's LM cache on (memory only, empty at the start): ours asks an
  identical (program, example) evaluation once, which DSPy repeats unless its cache answers it.

The fake server answers ``--accuracy`` of the questions right (0.15 gives the 905 / 503 calls
closest to the issue's 912 / 517), and runs with Nagle's algorithm off: as shipped, its two-write
responses wait ~40 ms for the client's delayed ACK on every keep-alive request (``--server-as-shipped``
keeps that).

Both use ``dspy.ChatAdapter()``, ``cache=False`` LMs and DSPy's cache switched off, so every call
reaches the server, whose counter gives "LM calls". "ideal" is calls x latency / threads;
"critical path" counts inherently sequential calls one at a time (see ``_trace.py``):

  sum over stages of max(longest chain, ceil(calls / threads)) x latency, where
  random search:  stage 1 = every candidate's bootstrap, stage 2 = every candidate's evaluation;
  MIPROv2:        stage 1 = demo bootstraps + dataset summary, stage 2 = instruction proposals,
                  then each Evaluate call (default program, trials) is a stage of its own;
  GEPA:           not computed (each iteration needs the previous one's outcome).

A chain is one bootstrap (examples tried one at a time until enough demos pass the metric), the
dataset summary (each batch sees the previous observations) or one instruction proposal (describe
program -> describe module -> propose). The programs are compared by their saved state.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import FakeServerProcess, headqa_or_synthetic, machine, table
from _trace import Trace, call_tracer, install_tags

MODEL = "openai/fake-model"
REFERENCE = "reference (DSPy compile)"
REFERENCE_CACHED = "reference, DSPy cache on"
OURS = "ours (optimizer.compile)"
OPTIMIZERS = ("BootstrapFewShotWithRandomSearch", "MIPROv2", "GEPA")
STAGES = {  # for the critical path; GEPA's iterations are sequential by design (no stages computed)
    "BootstrapFewShotWithRandomSearch": ([["bootstrap"]], False),
    "MIPROv2": ([["bootstrap", "summary"], ["proposal"]], True),
}


@dataclass
class Run:
    optimizer: str
    way: str
    wall_s: float
    cpu_s: float
    calls: int
    trace: Trace
    state: str
    extra: dict[str, Any]


def _state(program: Any) -> str:
    return json.dumps(program.dump_state(), sort_keys=True, default=str)


def _lm_config(api_base: str) -> Any:
    from helm_optimizer.config import LMConfig

    return LMConfig(model=MODEL, api_base=api_base)


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def run_reference(name: str, data: Any, server: FakeServerProcess, tracer: Any, threads: int, *,
                  cache: bool = False) -> Run:
    """Plain DSPy, as its documentation shows it; the LM has the parameters ``build_lm`` gives ours.

    ``cache``: DSPy's LM cache on, in memory only and empty at the start (not part of the comparison).
    """
    import dspy

    cfg = _lm_config(server.api_base)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=cache)
    lm = dspy.LM(MODEL, api_base=server.api_base, api_key="not-needed", temperature=cfg.temperature,
                 max_tokens=cfg.max_tokens, cache=cache, num_retries=cfg.num_retries, timeout=cfg.timeout)
    student = dspy.ChainOfThought("inputs -> output")
    server.reset()
    tracer.reset()
    with _quiet(), dspy.context(lm=lm, adapter=dspy.ChatAdapter(), callbacks=[tracer]):
        if name == "MIPROv2":
            optimizer: Any = dspy.MIPROv2(metric=data.metric, max_bootstrapped_demos=3, max_labeled_demos=3,
                                          num_threads=threads, auto="light", seed=0)
        elif name == "GEPA":
            optimizer = dspy.GEPA(metric=data.feedback_metric, auto="light", reflection_lm=lm, num_threads=threads,
                                  seed=0, track_stats=False)
        else:
            optimizer = dspy.BootstrapFewShotWithRandomSearch(metric=data.metric, max_bootstrapped_demos=3,
                                                              max_labeled_demos=3, num_threads=threads)
        started, cpu = time.perf_counter(), time.process_time()
        program = optimizer.compile(student, trainset=data.train, valset=data.val)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    extra: dict[str, Any] = {}
    if name == "BootstrapFewShotWithRandomSearch":
        by_seed = sorted(program.candidate_programs, key=lambda c: c["seed"])
        extra["candidate_scores"] = [round(float(c["score"]), 2) for c in by_seed]
    calls = server.completions()
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    return Run(name, REFERENCE_CACHED if cache else REFERENCE, wall, cpu, calls, tracer.reset(), _state(program),
               extra)


def run_ours(name: str, data: Any, server: FakeServerProcess, tracer: Any, threads: int) -> Run:
    """Our optimizer class with the LM, meter and DSPy context that ``optimize()`` sets up."""
    import dspy

    from helm_optimizer.agents.program import make_program
    from helm_optimizer.lm import UsageMeter, adapter_for, build_lm
    from helm_optimizer.optimizers import OPTIMIZERS as REGISTRY
    from helm_optimizer.optimizers.base import OptimizeContext

    cfg = _lm_config(server.api_base)
    meter = UsageMeter(concurrency=threads)
    lm = build_lm(cfg, cache=False, meter=meter, parallel=threads)
    context = OptimizeContext(metric=data.metric, feedback_metric=data.feedback_metric, task_lm=lm, prompt_lm=lm,
                              max_bootstrapped_demos=3, max_labeled_demos=3, num_threads=threads, seed=0,
                              auto="light")
    optimizer = REGISTRY.get(name)({})  # type: ignore[call-arg]
    student = make_program("cot")
    server.reset()
    tracer.reset()
    with _quiet(), dspy.context(lm=lm, adapter=adapter_for(cfg), usage_tracker=meter, track_usage=True,
                                callbacks=[tracer], max_errors=10**9):
        started, cpu = time.perf_counter(), time.process_time()
        program = optimizer.compile(student, trainset=data.train, valset=data.val, context=context)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    extra: dict[str, Any] = {}
    if name == "BootstrapFewShotWithRandomSearch":
        extra["candidate_scores"] = [round(float(s), 2) for s in program.candidate_scores]
    return Run(name, OURS, wall, cpu, server.completions(), tracer.reset(), _state(program), extra)


def run_pipeline(name: str, server: FakeServerProcess, threads: int, data_dir: Path) -> tuple[float, int, int]:
    """``optimize()`` end to end: (its wall time without data loading, calls at the server, calls it counted)."""
    from helm_optimizer.config import OptimizeConfig
    from helm_optimizer.optimize import optimize

    with tempfile.TemporaryDirectory(prefix="hopt-bench-out-") as out:
        config = OptimizeConfig(scenario="head_qa", optimizer=name, lm=_lm_config(server.api_base), limit=80,
                                data_dir=data_dir, on_overlap="drop", num_threads=threads, cache=False,
                                output_dir=Path(out), seed=0, auto="light")
        server.reset()
        with _quiet():
            result = optimize(config)
        agent = result.agents[0]
        return agent.wall_time_s, server.completions(), int(agent.usage.get("lm_calls") or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="fake server delay per call, seconds")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (reference, ours) pair")
    parser.add_argument("--accuracy", type=float, default=0.15,
                        help="fraction of questions the fake model answers right (0.15 comes closest to the issue's "
                             "912 / 517 calls)")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument("--server-as-shipped", action="store_true",
                        help="do not disable Nagle in the fake server (adds ~40 ms per call on keep-alive)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the optimize() pipeline rows")
    parser.add_argument("--no-cached-reference", dest="cached_reference", action="store_false",
                        help="skip the extra reference run with DSPy's LM cache on")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]

    import dspy

    from helm_optimizer._env import prepare_offline_environment

    prepare_offline_environment()
    print(machine())
    data = headqa_or_synthetic()
    print(f"data: {data.note}; fake server: latency {args.latency * 1000:.0f} ms, accuracy {args.accuracy}, "
          f"Nagle {'as shipped' if args.server_as_shipped else 'disabled (TCP_NODELAY)'}; threads {args.threads}; "
          f"model {MODEL}; ChatAdapter; LM cache off; DSPy cache off")
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    install_tags()
    tracer = call_tracer()
    runs: list[Run] = []
    pipeline: dict[str, list[tuple[float, int, int]]] = {}
    with FakeServerProcess(latency=args.latency, accuracy=args.accuracy, answers=data.answers,
                           nodelay=not args.server_as_shipped) as server:
        for name in names:
            for rep in range(args.repeat):
                # Alternate the order so neither side always runs on a warmer process.
                order = (run_reference, run_ours) if rep % 2 == 0 else (run_ours, run_reference)
                for fn in order:
                    run = fn(name, data, server, tracer, args.threads)
                    runs.append(run)
                    print(f"  {name:<34} {run.way:<26} {run.wall_s:6.2f} s  {run.calls:4d} calls", flush=True)
            if args.cached_reference:
                run = run_reference(name, data, server, tracer, args.threads, cache=True)
                runs.append(run)
                print(f"  {name:<34} {run.way:<26} {run.wall_s:6.2f} s  {run.calls:4d} calls", flush=True)
            if not args.no_pipeline and data.name == "head_qa" and name in STAGES:
                pipeline[name] = [run_pipeline(name, server, args.threads, Path("/work/shared/data"))]
                wall, calls, _ = pipeline[name][0]
                print(f"  {name:<34} {'ours (optimize() pipeline)':<26} {wall:6.2f} s  {calls:4d} calls", flush=True)

    print()
    print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
    _report(runs, names, pipeline, args)
    return 0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _report(runs: list[Run], names: list[str], pipeline: dict[str, list[tuple[float, int, int]]],
            args: argparse.Namespace) -> None:
    rows = []
    summary = []
    for name in names:
        mine = [r for r in runs if r.optimizer == name]
        for run in mine:
            rows.append([name, run.way, run.wall_s, run.calls, run.trace.mean_call_s() * 1000,
                         run.trace.busy_s() / (run.wall_s * args.threads) * 100, run.cpu_s,
                         run.cpu_s / max(1, run.calls) * 1000])
        ref = [r for r in mine if r.way == REFERENCE]
        ours = [r for r in mine if r.way == OURS]
        if not (ref and ours):
            continue
        ref_wall, ours_wall = _median([r.wall_s for r in ref]), _median([r.wall_s for r in ours])
        ref_calls, ours_calls = max(r.calls for r in ref), max(r.calls for r in ours)
        critical: Any = "-"
        if name in STAGES:
            stages, each_batch = STAGES[name]
            critical = ref[0].trace.critical_path_s(latency=args.latency, threads=args.threads, stages=stages,
                                                    each_batch_a_stage=each_batch)
        same = all(r.state == ref[0].state for r in mine)
        cached = [r.calls for r in mine if r.way == REFERENCE_CACHED]
        scores = "-"
        if name == "BootstrapFewShotWithRandomSearch":
            first = ref[0].extra["candidate_scores"]
            scores = "yes" if all(r.extra["candidate_scores"] == first for r in mine) else "NO"
        ideal = ref_calls * args.latency / args.threads
        summary.append([name, ref_wall, ours_wall, ours_wall / ref_wall, ref_calls, ours_calls, ours_calls / ref_calls,
                        cached[0] if cached else "-", ideal, ours_wall / ideal, critical,
                        "yes" if same else "NO", scores])
    print(table(["optimizer", "way", "wall s", "LM calls", "mean call ms", "slot use %", "client CPU s",
                 "CPU ms/call"], rows, title="Every run"))
    print()
    print(table(["optimizer", "reference wall s", "ours wall s", "ours/ref wall", "reference calls", "ours calls",
                 "ours/ref calls", "ref. calls, DSPy cache on", "ideal s", "ours/ideal", "critical path s",
                 "same program", "same candidate scores"], summary,
                title=f"Ours vs reference (median of {args.repeat} runs each)"))
    if pipeline:
        print()
        prow = [[name, wall, calls, calls - max(r.calls for r in runs if r.optimizer == name and r.way == OURS)]
                for name, results in pipeline.items() for wall, calls, _ in results]
        print(table(["optimizer", "optimize() wall s", "LM calls", "of which before/after evaluation"], prow,
                    title="Ours through the whole optimize() pipeline (one run; excludes data loading)"))
    print()
    print("ideal = reference calls x latency / threads; critical path = the reference's calls with each "
          "sequential chain counted one call at a time (module docstring); mean call = time inside "
          "dspy.LM.__call__ (server latency + client work + waiting for the GIL); slot use = sum of call times / "
          "(wall x threads); client CPU = CPU time of this process during compile. Ours asks an identical "
          "(program, example) evaluation once (DSPy asks again, and answers from its LM cache when that is on: "
          "'ref. calls, DSPy cache on') and skips MIPROv2's slot-0 proposal, which DSPy overwrites.")


if __name__ == "__main__":
    sys.exit(main())
