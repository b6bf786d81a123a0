"""``BootstrapFewShotWithRandomSearch`` on the work pool: every candidate scored as soon as it is built."""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import dspy

from helm_optimizer.optimizers.parallel.candidates import DemoBudget, random_search_recipes, start_candidates
from helm_optimizer.optimizers.parallel.workpool import WorkPool, gather, then

__all__ = ["RandomSearchResult", "random_search"]

logger = logging.getLogger(__name__)


@dataclass
class RandomSearchResult:
    programs: list[Any]
    scores: list[float]
    best: int

    @property
    def program(self) -> Any:
        return self.programs[self.best]


def _winner(scores: Sequence[float], stop_at_score: float | None) -> int:
    """The first candidate with the top score, looking no further than the first that reaches ``stop_at_score``."""
    considered = len(scores)
    if stop_at_score is not None:
        considered = next((i + 1 for i, s in enumerate(scores) if s >= stop_at_score), considered)
    head = list(scores[:considered])
    return head.index(max(head))


def random_search(student: Any, trainset: Sequence[Any], devset: Sequence[Any], metric: Callable[..., Any],
                  budget: DemoBudget, *, candidates: int, seed: int, num_threads: int, spare_workers: int = 0,
                  stop_at_score: float | None = None,
                  progress: Callable[[str], None] = lambda _m: None) -> RandomSearchResult:
    """Build the ``candidates + 3`` demo sets of random search and score each on ``devset``.

    Scores are ``dspy.Evaluate``'s; an evaluation that fails fails the search, as in DSPy. With
    ``stop_at_score``, candidates after the first one reaching it cannot win (DSPy does not build
    them; here they may already have been built and scored).
    """
    if budget.max_errors is None:  # DSPy's default, read here: pool callbacks run outside the caller's context
        budget = dataclasses.replace(budget, max_errors=int(dspy.settings.max_errors))
    recipes = random_search_recipes(trainset, candidates, budget, seed=seed)
    context = contextvars.copy_context()
    total = len(recipes)
    with WorkPool(num_threads, spare=spare_workers) as pool:
        programs = start_candidates(pool, recipes, student, budget, context=context, progress=progress)

        def score(index: int) -> Callable[[Any], Future[float]]:
            def report(done: Future[float]) -> None:
                if not done.cancelled() and done.exception() is None:
                    progress(f"candidate {index + 1}/{total} scored {done.result()}")

            def evaluate(program: Any) -> Future[float]:
                future = pool.evaluate(program, devset, metric, max_errors=budget.max_errors, context=context)
                future.add_done_callback(report)
                return future

            return evaluate

        scores = gather([then(program, score(i)) for i, program in enumerate(programs)])
        built = gather(programs)
    best = _winner(scores, stop_at_score)
    logger.info("Random search scores by candidate: %s; best candidate %d", scores, best)
    return RandomSearchResult(built, scores, best)
