"""Demo-set candidates of random search and MIPROv2: drawn up front, built on the work pool.

Both optimizers try the same kinds of demo sets, in the same order (facts of DSPy's algorithms):

1. the program without demos;
2. ``max_labeled_demos`` training examples sampled as demos (DSPy's ``LabeledFewShot``);
3. a bootstrap over the training set in its given order;
4. bootstraps over the training set shuffled, each with a demo budget drawn between 1 and
   ``max_bootstrapped_demos``.

They differ in where the shuffles and budgets come from. Random search gives candidate ``k``
(counting from 0 among the shuffled ones) its own generator, ``random.Random(seed + k)``, used once
to shuffle and once more, freshly seeded, to draw the budget; DSPy's random search has no seed and
is ours with seed 0. MIPROv2 draws every shuffle and budget from its one generator, in candidate
order, and with ``max_labeled_demos=0`` its second candidate is a shuffled bootstrap as well.

A :class:`Recipe` holds everything random about a candidate, so the building itself (DSPy's
``BootstrapFewShot`` / ``LabeledFewShot`` ``compile``) can run anywhere, in any order.
"""

from __future__ import annotations

import contextvars
import enum
import itertools
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import dspy

from helm_optimizer.errors import ConfigError
from helm_optimizer.optimizers.parallel.workpool import WorkPool, resolved

__all__ = [
    "DemoBudget",
    "Kind",
    "Recipe",
    "build_candidate",
    "mipro_recipes",
    "random_search_recipes",
    "start_candidates",
]


class Kind(enum.Enum):
    NO_DEMOS = "no demos"
    LABELED = "labeled demos"
    BOOTSTRAPPED = "bootstrapped demos"


@dataclass(frozen=True)
class DemoBudget:
    """The demo limits and bootstrap settings every candidate of one run shares."""

    labeled: int
    bootstrapped: int
    metric: Callable[..., Any] | None = None
    max_rounds: int = 1
    metric_threshold: float | None = None
    max_errors: int | None = None
    sample_labeled: bool = True
    teacher: Any = None
    teacher_settings: dict[str, Any] = field(default_factory=dict)

    def random_size(self, rng: random.Random) -> int:
        if self.bootstrapped < 1:
            raise ConfigError("Bootstrapped demo sets need max_bootstrapped_demos of at least 1 "
                              f"(got {self.bootstrapped}); raise --max-bootstrapped-demos.")
        return rng.randint(1, self.bootstrapped)


@dataclass(frozen=True)
class Recipe:
    """One candidate: its kind, the training examples in the order a bootstrap tries them, its demo budget."""

    kind: Kind
    examples: tuple[Any, ...] = ()
    bootstrapped: int = 0

    @property
    def uses_lm(self) -> bool:
        return self.kind is Kind.BOOTSTRAPPED


def random_search_recipes(trainset: Sequence[Any], shuffled: int, budget: DemoBudget, *, seed: int) -> list[Recipe]:
    """``shuffled + 3`` candidates of ``BootstrapFewShotWithRandomSearch`` for ``seed``."""
    examples = tuple(trainset)
    recipes = [Recipe(Kind.NO_DEMOS), Recipe(Kind.LABELED, examples),
               Recipe(Kind.BOOTSTRAPPED, examples, budget.bootstrapped)]
    for k in range(shuffled):
        order = list(examples)
        random.Random(seed + k).shuffle(order)
        recipes.append(Recipe(Kind.BOOTSTRAPPED, tuple(order), budget.random_size(random.Random(seed + k))))
    return recipes


def mipro_recipes(trainset: Sequence[Any], count: int, budget: DemoBudget, rng: random.Random) -> list[Recipe]:
    """MIPROv2's ``count`` demo sets; the shuffles and budgets are drawn from ``rng`` here, in order."""
    examples = tuple(trainset)

    def shuffled() -> Recipe:
        order = list(examples)
        rng.shuffle(order)
        return Recipe(Kind.BOOTSTRAPPED, tuple(order), budget.random_size(rng))

    def in_order() -> Iterator[Recipe]:
        yield Recipe(Kind.NO_DEMOS)
        yield Recipe(Kind.LABELED, examples) if budget.labeled > 0 else shuffled()
        yield Recipe(Kind.BOOTSTRAPPED, examples, budget.bootstrapped)
        while True:
            yield shuffled()

    # islice pulls one recipe at a time, so only the candidates that exist draw from rng.
    return list(itertools.islice(in_order(), max(0, count)))


def build_candidate(recipe: Recipe, student: Any, budget: DemoBudget) -> Any:
    """The candidate program of ``recipe`` (bootstraps make LM calls in the calling thread)."""
    if recipe.kind is Kind.NO_DEMOS:
        return student.reset_copy()
    if recipe.kind is Kind.LABELED:
        labeled = dspy.LabeledFewShot(k=budget.labeled)
        return labeled.compile(student, trainset=list(recipe.examples), sample=budget.sample_labeled)
    bootstrap = dspy.BootstrapFewShot(
        metric=budget.metric, metric_threshold=budget.metric_threshold, teacher_settings=dict(budget.teacher_settings),
        max_bootstrapped_demos=recipe.bootstrapped, max_labeled_demos=budget.labeled, max_rounds=budget.max_rounds,
        max_errors=budget.max_errors,
    )
    return bootstrap.compile(student, teacher=budget.teacher, trainset=list(recipe.examples))


def start_candidates(pool: WorkPool, recipes: Sequence[Recipe], student: Any, budget: DemoBudget, *,
                     context: contextvars.Context | None = None,
                     progress: Callable[[str], None] = lambda _m: None) -> list[Future[Any]]:
    """A future per recipe: bootstraps go to the pool as chains, the others are built at once."""
    lock = threading.Lock()
    built = [0]
    bootstraps = sum(1 for r in recipes if r.uses_lm)

    def bootstrapped(recipe: Recipe) -> Any:
        program = build_candidate(recipe, student, budget)
        with lock:
            built[0] += 1
            done = built[0]
        progress(f"bootstrapped demo set {done}/{bootstraps}")
        return program

    return [pool.submit(bootstrapped, recipe, context=context, priority=WorkPool.CHAIN) if recipe.uses_lm
            else resolved(build_candidate(recipe, student, budget)) for recipe in recipes]
