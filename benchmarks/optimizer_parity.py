"""Same program as DSPy? Ours against plain DSPy ``compile`` over several configurations (fake server, 0 ms).

    .venv/bin/python benchmarks/optimizer_parity.py [--only MIPRO]

HeadQA from /work/shared/data (60 train, up to 120 val; HELM metric; the script stops without the
data). For each configuration the fake server (its own process, a fixed answer key and accuracy)
answers both runs identically; the table says whether the saved program states are equal and how
many LM calls each side made (ours may make fewer: identical evaluations are asked once, and
MIPROv2's slot-0 proposal, which DSPy overwrites, is not asked). Not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from _common import DATA_DIR, FakeServerProcess, machine, table

MODEL = "openai/fake-model"


@dataclass(frozen=True)
class Case:
    name: str
    optimizer: str  # "rs" | "mipro"
    accuracy: float
    demo_accuracy: float | None = None
    val: int = 40
    options: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("random search, 16 candidates", "rs", 0.15),
    Case("random search, 6 candidates, demos help", "rs", 0.5, 0.8, options={"num_candidate_programs": 6}),
    Case("MIPROv2 light, 40 val (full evaluations)", "mipro", 0.15),
    Case("MIPROv2 light, 120 val (minibatches of 35)", "mipro", 0.3, 0.6, val=120),
    Case("MIPROv2 4 candidates, 14 trials (past TPE start-up)", "mipro", 0.3, 0.6,
         options={"num_candidates": 4, "num_trials": 14}),
    Case("MIPROv2 3 candidates, 12 trials, no minibatch", "mipro", 0.3, 0.6, val=30,
         options={"num_candidates": 3, "num_trials": 12, "minibatch": False}),
    Case("MIPROv2 light, zero-shot (no demos)", "mipro", 0.3, options={"zeroshot": True}),
]


def _run(case: Case, way: str, train: list[Any], val: list[Any], metric: Any, server: FakeServerProcess) -> Any:
    """Plain DSPy's ``compile`` (reference) or our registered optimizer, called as ``optimize()`` calls it."""
    import dspy

    from helm_optimizer.config import LMConfig
    from helm_optimizer.lm import UsageMeter, build_lm
    from helm_optimizer.optimizers import OPTIMIZERS
    from helm_optimizer.optimizers.base import OptimizeContext

    cfg = LMConfig(model=MODEL, api_base=server.api_base)
    demos = 0 if case.options.get("zeroshot") else 3
    options = {k: v for k, v in case.options.items() if k != "zeroshot"}
    student = dspy.ChainOfThought("inputs -> output")
    quiet = contextlib.ExitStack()
    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    if way == "ours":
        meter = UsageMeter(concurrency=8)
        lm = build_lm(cfg, cache=False, meter=meter, parallel=8)
        context = OptimizeContext(metric=metric, feedback_metric=metric, task_lm=lm, prompt_lm=lm, num_threads=8,
                                  seed=0, max_bootstrapped_demos=demos, max_labeled_demos=demos, auto="light")
        name = "BootstrapFewShotWithRandomSearch" if case.optimizer == "rs" else "MIPROv2"
        with quiet, dspy.context(lm=lm, adapter=dspy.ChatAdapter(), usage_tracker=meter, max_errors=10**9):
            return OPTIMIZERS.get(name)(options).compile(  # type: ignore[call-arg]
                student, trainset=train, valset=val, context=context)
    lm = dspy.LM(MODEL, api_base=server.api_base, api_key="not-needed", cache=False, temperature=cfg.temperature,
                 num_retries=cfg.num_retries, timeout=cfg.timeout, max_tokens=cfg.max_tokens)
    with quiet, dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        if case.optimizer == "rs":
            return dspy.BootstrapFewShotWithRandomSearch(
                metric=metric, max_bootstrapped_demos=3, max_labeled_demos=3, num_threads=8,
                num_candidate_programs=options.get("num_candidate_programs", 16)).compile(student, trainset=train,
                                                                                          valset=val)
        init: dict[str, Any] = {"metric": metric, "prompt_model": lm, "task_model": lm, "num_threads": 8, "seed": 0,
                                "max_bootstrapped_demos": demos, "max_labeled_demos": demos, "verbose": False,
                                "auto": None if "num_candidates" in options else "light"}
        if "num_candidates" in options:
            init["num_candidates"] = options["num_candidates"]
        kwargs = {k: options[k] for k in ("num_trials", "minibatch") if k in options}
        return dspy.MIPROv2(**init).compile(student, trainset=train, valset=val, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    args = parser.parse_args(argv)
    if not (DATA_DIR / "head_qa").is_dir():
        print(f"skipped: no HeadQA data under {DATA_DIR}")
        return 0
    import dspy

    from helm_optimizer._env import prepare_offline_environment
    from helm_optimizer.scenarios.dataset import load_dataset

    prepare_offline_environment()
    print(machine())
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    ds = load_dataset("head_qa", data_dir=str(DATA_DIR), train_size=60, val_size=120, on_overlap="drop")
    train, val_all, metric = list(ds.train), list(ds.val), ds.dspy_metric()
    answers = {ex["inputs"]: ex["output"] for ex in train + val_all}
    rows = []
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        val = val_all[: case.val]
        with FakeServerProcess(latency=0.0, accuracy=case.accuracy, demo_accuracy=case.demo_accuracy,
                               answers=answers) as server:
            states, calls = {}, {}
            for way in ("reference", "ours"):
                server.reset()
                program = _run(case, way, train, val, metric, server)
                states[way] = json.dumps(program.dump_state(), sort_keys=True, default=str)
                calls[way] = server.completions()
        rows.append([case.name, f"{len(train)}/{len(val)}", case.accuracy, calls["reference"], calls["ours"],
                     "yes" if states["reference"] == states["ours"] else "NO"])
        print(f"  {case.name:<52} same program: {rows[-1][-1]}", flush=True)
    print()
    print(table(["configuration", "train/val", "accuracy", "reference calls", "ours calls", "same program"], rows,
                title="Ours vs DSPy compile: resulting program (seed 0, same LM answers)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
