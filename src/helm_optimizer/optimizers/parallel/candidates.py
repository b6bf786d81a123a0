"""Demo candidates of random search and MIPROv2's step 1, drawn in DSPy's order and built concurrently."""

from __future__ import annotations

import contextvars
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import dspy

from helm_optimizer.optimizers.parallel.workpool import WorkPool, gather, resolved, then

__all__ = ["CandidatePlan", "candidate_plans", "score_candidates", "start_candidates"]


@dataclass
class CandidatePlan:
    """How to build one candidate: ``build()`` makes LM calls (a bootstrap) when ``uses_lm``."""

    seed: int
    build: Callable[[], Any]
    uses_lm: bool


def candidate_plans(student: Any, trainset: list[Any], *, metric: Any, num_candidate_sets: int,
                    max_labeled: int, max_bootstrapped: int, shuffle_rng: random.Random | None,
                    seed_offset: int = 0, max_rounds: int = 1, metric_threshold: float | None = None,
                    max_errors: int | None = None, labeled_sample: bool = True, include_non_bootstrapped: bool = True,
                    teacher: Any = None, teacher_settings: dict[str, Any] | None = None) -> list[CandidatePlan]:
    """Candidates ``-3 .. num_candidate_sets-4`` exactly as DSPy builds them; every random draw is made here.

    ``shuffle_rng`` given: MIPROv2's ``create_n_fewshot_demo_sets`` (one generator drawn in order).
    ``shuffle_rng`` None: ``BootstrapFewShotWithRandomSearch`` (``random.Random(seed_offset + i)``).
    """
    def bootstrap(copy: list[Any], size: int) -> Callable[[], Any]:
        def run() -> Any:
            optimizer = dspy.BootstrapFewShot(
                metric=metric, metric_threshold=metric_threshold, max_bootstrapped_demos=size,
                max_labeled_demos=max_labeled, max_rounds=max_rounds, max_errors=max_errors,
                teacher_settings=teacher_settings or {},
            )
            return optimizer.compile(student, teacher=teacher, trainset=copy)

        return run

    plans: list[CandidatePlan] = []
    for seed in range(-3, num_candidate_sets - 3):
        copy = list(trainset)
        if seed == -3 and include_non_bootstrapped:
            plans.append(CandidatePlan(seed, student.reset_copy, False))
        elif seed == -2 and include_non_bootstrapped and (shuffle_rng is None or max_labeled > 0):
            def labeled_only(copy: list[Any] = copy) -> Any:
                return dspy.LabeledFewShot(k=max_labeled).compile(student, trainset=copy, sample=labeled_sample)

            plans.append(CandidatePlan(seed, labeled_only, False))
        elif seed == -1:
            plans.append(CandidatePlan(seed, bootstrap(copy, max_bootstrapped), True))
        else:
            if shuffle_rng is not None:
                shuffle_rng.shuffle(copy)
                size = shuffle_rng.randint(1, max(1, max_bootstrapped))
            else:
                random.Random(seed + seed_offset).shuffle(copy)
                size = random.Random(seed + seed_offset).randint(1, max(1, max_bootstrapped))
            plans.append(CandidatePlan(seed, bootstrap(copy, size), True))
    return plans


def start_candidates(pool: WorkPool, plans: Sequence[CandidatePlan],
                     progress: Callable[[str], None] = lambda _m: None) -> list[Future[Any]]:
    """Submit the bootstraps (first come, first served); candidates without LM work are built here."""
    total = len(plans)
    counter = {"done": 0}
    lock = threading.Lock()

    def tracked(plan: CandidatePlan) -> Any:
        program = plan.build()
        with lock:
            counter["done"] += 1
            done = counter["done"]
        progress(f"bootstrapped candidate {done}/{total}")
        return program

    return [pool.submit(tracked, plan, priority=WorkPool.CHAIN) if plan.uses_lm else resolved(tracked(plan))
            for plan in plans]


def score_candidates(pool: WorkPool, plans: Sequence[CandidatePlan], devset: Sequence[Any], metric: Any, *,
                     max_errors: int | None, progress: Callable[[str], None] = lambda _m: None
                     ) -> tuple[list[Any], list[float]]:
    """Build every candidate and score it on ``devset`` as soon as it exists (random search)."""
    context = contextvars.copy_context()
    programs = start_candidates(pool, plans, progress)
    total = len(plans)

    def score(index: int) -> Callable[[Any], Future[float]]:
        def report(done: Future[float]) -> None:
            if done.exception() is None:
                progress(f"candidate {index + 1}/{total} scored {done.result():.1f}")

        def run(program: Any) -> Future[float]:
            future = pool.evaluate(program, devset, metric, max_errors=max_errors, context=context)
            future.add_done_callback(report)
            return future

        return run

    scores = [then(program, score(i)) for i, program in enumerate(programs)]
    return gather(programs), gather(scores)
