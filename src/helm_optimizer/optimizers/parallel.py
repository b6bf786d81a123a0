"""Concurrent construction of independent optimizer candidates.

DSPy builds random-search and MIPROv2 demo candidates one after another, each a sequential
bootstrap over the training set, and proposes MIPROv2 instructions one LM call at a time. Those
steps do not depend on each other: here every random choice is drawn first, in DSPy's order and
from DSPy's generators, and then the independent LM work runs on a thread pool. For the same seed
and the same LM answers the result is the program DSPy would return.
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import dspy
from dspy.propose.grounded_proposer import GenerateModuleInstruction, GroundedProposer
from dspy.propose.utils import create_predictor_level_history_string, strip_prefix
from dspy.teleprompt import MIPROv2
from dspy.teleprompt.mipro_optimizer_v2 import (
    BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
    LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT,
)
from dspy.teleprompt.utils import get_signature

__all__ = ["ParallelMIPROv2", "bootstrap_candidates", "run_parallel"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_HISTORY = 5


def run_parallel(tasks: Sequence[Callable[[], T]], *, max_workers: int) -> list[T]:
    """Run ``tasks`` on a thread pool, keeping DSPy's context (LM, adapter, tracker) in each thread.

    Results come back in task order. The first exception cancels tasks not yet started and is
    raised once running ones finish.
    """
    if not tasks:
        return []
    if max_workers <= 1 or len(tasks) == 1:
        return [task() for task in tasks]
    parent = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=min(max_workers, len(tasks)), thread_name_prefix="hopt-candidate") as pool:
        futures = [pool.submit(parent.copy().run, task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for future in pending:
                future.cancel()
            raise failed[0].exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def _bootstrap(student: Any, trainset: list[Any], *, context: Any, max_bootstrapped: int, max_labeled: int,
               max_rounds: int, metric_threshold: float | None, max_errors: int | None, teacher: Any) -> Any:
    optimizer = dspy.BootstrapFewShot(
        metric=context.metric, metric_threshold=metric_threshold, max_bootstrapped_demos=max_bootstrapped,
        max_labeled_demos=max_labeled, max_rounds=max_rounds, max_errors=max_errors,
    )
    return optimizer.compile(student, teacher=teacher, trainset=trainset)


def bootstrap_candidates(student: Any, trainset: list[Any], *, context: Any, num_candidate_sets: int,
                         shuffle_rng: random.Random | None, seed_offset: int = 0, max_rounds: int = 1,
                         metric_threshold: float | None = None, max_errors: int | None = None,
                         labeled_sample: bool = True, max_labeled: int | None = None,
                         max_bootstrapped: int | None = None, include_non_bootstrapped: bool = True,
                         teacher: Any = None) -> list[Any]:
    """Candidate programs ``-3 .. num_candidate_sets-4`` exactly as DSPy builds them, concurrently.

    ``shuffle_rng`` given: MIPROv2's ``create_n_fewshot_demo_sets`` (one generator drawn in order).
    ``shuffle_rng`` None: ``BootstrapFewShotWithRandomSearch`` (``random.Random(seed_offset + i)``).
    """
    labeled = context.max_labeled_demos if max_labeled is None else max_labeled
    bootstrapped = context.max_bootstrapped_demos if max_bootstrapped is None else max_bootstrapped
    plans: list[Callable[[], Any]] = []
    for seed in range(-3, num_candidate_sets - 3):
        copy = list(trainset)
        if seed == -3 and include_non_bootstrapped:
            plans.append(student.reset_copy)
        elif seed == -2 and include_non_bootstrapped and (shuffle_rng is None or labeled > 0):
            def labeled_only(copy: list[Any] = copy) -> Any:
                return dspy.LabeledFewShot(k=labeled).compile(student, trainset=copy, sample=labeled_sample)

            plans.append(labeled_only)
        elif seed == -1:
            plans.append(lambda copy=copy: _bootstrap(
                student, copy, context=context, max_bootstrapped=bootstrapped, max_labeled=labeled,
                max_rounds=max_rounds, metric_threshold=metric_threshold, max_errors=max_errors, teacher=teacher))
        else:
            if shuffle_rng is not None:
                shuffle_rng.shuffle(copy)
                size = shuffle_rng.randint(1, max(1, bootstrapped))
            else:
                random.Random(seed + seed_offset).shuffle(copy)
                size = random.Random(seed + seed_offset).randint(1, max(1, bootstrapped))
            plans.append(lambda copy=copy, size=size: _bootstrap(
                student, copy, context=context, max_bootstrapped=size, max_labeled=labeled,
                max_rounds=max_rounds, metric_threshold=metric_threshold, max_errors=max_errors, teacher=teacher))
    total = len(plans)
    counter = {"done": 0}

    def tracked(plan: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            program = plan()
            counter["done"] += 1
            context.progress(f"bootstrapped candidate {counter['done']}/{total}")
            return program

        return run

    return run_parallel([tracked(p) for p in plans], max_workers=context.num_threads)


class _ParallelProposer(GroundedProposer):  # type: ignore[misc]
    """GroundedProposer whose instruction proposals run concurrently (random draws taken in order)."""

    num_threads: int = 8

    def propose_instructions_for_program(self, trainset: Any, program: Any, demo_candidates: Any,
                                         trial_logs: Any, N: int) -> dict[int, list[str]]:
        if self.set_history_randomly:
            self.use_instruct_history = self.rng.random() < 0.5
        if not demo_candidates:
            self.use_task_demos = False
            num_demos = N
        else:
            num_demos = max(len(demo_candidates[0]), 1)
        jobs: list[tuple[int, Callable[[], str]]] = []
        for pred_i, predictor in enumerate(program.predictors()):
            for demo_set_i in range(num_demos)[: min(N, num_demos)]:
                tip = None
                if self.set_tip_randomly:
                    from dspy.propose.grounded_proposer import TIPS

                    tip = TIPS[self.rng.choice(list(TIPS.keys()))]
                    self.use_tip = bool(tip)
                rollout_id = self.rng.randint(0, 10**9)
                settings = {"use_tip": self.use_tip, "use_task_demos": self.use_task_demos,
                            "use_instruct_history": self.use_instruct_history}
                jobs.append((pred_i, lambda p=predictor, i=pred_i, d=demo_set_i, t=tip, r=rollout_id, s=settings:
                             self._propose_one(program, p, i, demo_candidates, d, trial_logs, t, r, s)))
        results = run_parallel([job for _, job in jobs], max_workers=self.num_threads)
        proposed: dict[int, list[str]] = {}
        for (pred_i, _), instruction in zip(jobs, results, strict=True):
            proposed.setdefault(pred_i, []).append(instruction)
        return proposed

    def _propose_one(self, program: Any, predictor: Any, pred_i: int, demo_candidates: Any, demo_set_i: int,
                     trial_logs: Any, tip: Any, rollout_id: int, settings: dict[str, Any]) -> str:
        history = create_predictor_level_history_string(program, pred_i, trial_logs, MAX_HISTORY)
        generator = GenerateModuleInstruction(
            program_code_string=self.program_code_string,
            use_dataset_summary=self.use_dataset_summary,
            program_aware=self.program_aware,
            use_task_demos=settings["use_task_demos"] and demo_candidates,
            use_instruct_history=settings["use_instruct_history"] and history,
            use_tip=settings["use_tip"],
            verbose=False,
        )
        rollout_lm = self.prompt_model.copy(rollout_id=rollout_id, temperature=self.init_temperature)
        with dspy.context(lm=rollout_lm):
            proposed = generator(
                demo_candidates=demo_candidates, pred_i=pred_i, demo_set_i=demo_set_i, program=program,
                data_summary=self.data_summary, previous_instructions=history,
                num_demos_in_context=self.num_demos_in_context, tip=tip,
            ).proposed_instruction
        return str(strip_prefix(proposed))


class ParallelMIPROv2(MIPROv2):  # type: ignore[misc]
    """DSPy's MIPROv2 with step 1 (demo candidates) and step 2 (instructions) run concurrently."""

    progress: Callable[[str], None] = staticmethod(lambda _message: None)  # type: ignore[assignment]

    def _bootstrap_fewshot_examples(self, program: Any, trainset: list[Any], seed: int, teacher: Any, *,
                                    num_fewshot_candidates: int, max_bootstrapped_demos: int,
                                    max_labeled_demos: int, max_errors: int | None,
                                    metric_threshold: float | None) -> Any:
        zeroshot = max_bootstrapped_demos == 0 and max_labeled_demos == 0
        labeled = LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_labeled_demos
        bootstrapped = BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_bootstrapped_demos
        self.progress(f"bootstrapping {num_fewshot_candidates} demo sets")
        context = _Context(self.metric, self.num_threads or 1, self.progress, labeled, bootstrapped)
        programs = bootstrap_candidates(
            program, trainset, context=context, num_candidate_sets=num_fewshot_candidates, shuffle_rng=self.rng,
            max_errors=max_errors if max_errors is not None else dspy.settings.max_errors,
            metric_threshold=metric_threshold, teacher=teacher,
        )
        return {i: [p.predictors()[i].demos for p in programs] for i, _ in enumerate(program.predictors())}

    def _propose_instructions(self, program: Any, trainset: list[Any], demo_candidates: Any,
                              view_data_batch_size: int, program_aware_proposer: bool, data_aware_proposer: bool,
                              tip_aware_proposer: bool, fewshot_aware_proposer: bool,
                              num_instruct_candidates: int) -> dict[int, list[str]]:
        self.progress(f"proposing {num_instruct_candidates} instructions")
        proposer = _ParallelProposer(
            program=program, trainset=trainset, prompt_model=self.prompt_model,
            view_data_batch_size=view_data_batch_size, program_aware=program_aware_proposer,
            use_dataset_summary=data_aware_proposer, use_task_demos=fewshot_aware_proposer,
            num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT, use_tip=tip_aware_proposer,
            set_tip_randomly=tip_aware_proposer, use_instruct_history=False, set_history_randomly=False,
            verbose=False, rng=self.rng, init_temperature=self.init_temperature,
        )
        proposer.num_threads = self.num_threads or 1
        candidates = proposer.propose_instructions_for_program(
            trainset=trainset, program=program, demo_candidates=demo_candidates, N=num_instruct_candidates,
            trial_logs={},
        )
        for i, predictor in enumerate(program.predictors()):
            candidates[i][0] = get_signature(predictor).instructions
        self.progress("searching instruction/demo combinations")
        return candidates


class _Context:
    """The subset of OptimizeContext that candidate bootstrapping reads."""

    def __init__(self, metric: Any, num_threads: int, progress: Callable[[str], None], labeled: int,
                 bootstrapped: int) -> None:
        self.metric = metric
        self.num_threads = num_threads
        self.progress = progress
        self.max_labeled_demos = labeled
        self.max_bootstrapped_demos = bootstrapped
