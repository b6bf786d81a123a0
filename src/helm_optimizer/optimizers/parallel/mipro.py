"""MIPROv2 (instructions + demos, Bayesian search) as one dataflow on a work pool.

The algorithm is DSPy's MIPROv2, taken from its description and checked against
``dspy.MIPROv2(...).compile`` by the parity tests (same settings, seed and LM answers: the same
program). One generator, ``random.Random(seed)``, makes every random choice, in this order:

1. with an ``auto`` preset (``light``/``medium``/``heavy``: DSPy's ``AUTO_RUN_SETTINGS``), a sample of at
   most the preset's ``val_size`` validation examples; minibatches are used above DSPy's
   ``MIN_MINIBATCH_SIZE`` examples; the preset's ``n`` demo sets, half as many instructions (all
   ``n`` when zero-shot) and max(2·P·log2 n, 1.5·n) trials, P being the number of predictors
   (twice that with demos);
2. the demo sets (:mod:`~helm_optimizer.optimizers.parallel.candidates`); a zero-shot run still
   bootstraps up to DSPy's ``BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT`` demos per set, to show the
   proposer, and drops them afterwards;
3. the instruction proposals (:mod:`~helm_optimizer.optimizers.parallel.proposer`);
4. the trials' minibatches (:mod:`~helm_optimizer.optimizers.parallel.trials`).

All draws of 1-3 are taken before any LM call, so the LM work runs as soon as what it needs
exists: the bootstraps, the dataset summary and the score of the unoptimized program start at
once, each proposal once the demo sets it reads are built, each trial once the instruction and
demo set it chose are there. At most ``num_threads`` LM calls are in flight.
"""

from __future__ import annotations

import contextvars
import logging
import math
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.propose.dataset_summary_generator import create_dataset_summary
from dspy.propose.utils import get_dspy_source_code
from dspy.teleprompt.mipro_optimizer_v2 import (
    AUTO_RUN_SETTINGS,
    BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
    LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT,
    MIN_MINIBATCH_SIZE,
)
from dspy.teleprompt.utils import create_minibatch

from helm_optimizer.errors import ConfigError
from helm_optimizer.optimizers.parallel.candidates import DemoBudget, mipro_recipes, start_candidates
from helm_optimizer.optimizers.parallel.proposer import InstructionProposer, draw_proposals, start_proposals
from helm_optimizer.optimizers.parallel.trials import TrialSearch
from helm_optimizer.optimizers.parallel.workpool import WorkPool, gather, map_result, when_all

__all__ = ["MiproPlan", "MiproV2", "plan_mipro", "suggested_trials"]

logger = logging.getLogger(__name__)


def suggested_trials(parameters: int, candidates: int) -> int:
    """Trials for ``parameters`` categorical choices of ``candidates`` options each: max(2·P·log2 n, 1.5·n)."""
    return int(max(2 * parameters * math.log2(candidates), 1.5 * candidates))


@dataclass(frozen=True)
class MiproPlan:
    """The sizes one MIPROv2 run works with, and the validation set it scores on."""

    demo_sets: int
    instructions: int
    num_trials: int
    minibatch: bool
    valset: list[Any]


def plan_mipro(*, auto: str | None, num_candidates: int | None, num_trials: int | None, minibatch: bool,
               predictors: int, zero_shot: bool, valset: Sequence[Any], rng: random.Random) -> MiproPlan:
    """MIPROv2's sizes from its ``auto`` preset, or from explicit ``num_candidates`` and ``num_trials``."""
    parameters = predictors if zero_shot else 2 * predictors
    if auto is None:
        if num_candidates is None:
            raise ConfigError("MIPROv2 without an auto preset needs num_candidates and num_trials; "
                              "pass -o num_candidates=N -o num_trials=T, or --auto light.")
        if num_trials is None:
            raise ConfigError(f"MIPROv2 with num_candidates={num_candidates} needs num_trials too (about "
                              f"{suggested_trials(parameters, num_candidates)} suits it); pass -o num_trials=T.")
        return MiproPlan(num_candidates, num_candidates, num_trials, minibatch, list(valset))
    if auto not in AUTO_RUN_SETTINGS:
        raise ConfigError(f"Unknown MIPROv2 auto preset {auto!r}; use one of {', '.join(AUTO_RUN_SETTINGS)}.")
    if num_candidates is not None or num_trials is not None:
        raise ConfigError(f"MIPROv2's auto preset {auto!r} sets num_candidates and num_trials itself; "
                          "drop those options or pass --auto none.")
    preset = AUTO_RUN_SETTINGS[auto]
    n = int(preset["n"])
    sample = create_minibatch(list(valset), batch_size=preset["val_size"], rng=rng)
    return MiproPlan(n, n if zero_shot else int(n * 0.5), suggested_trials(parameters, n),
                     len(sample) > MIN_MINIBATCH_SIZE, sample)


def _program_source(program: Any) -> str | None:
    """The source the program-aware proposer shows the LM, or None to propose without it (as DSPy)."""
    try:
        return str(get_dspy_source_code(program))
    except Exception as exc:
        logger.warning("Cannot read the program's source (%s); proposing without it.", exc)
        return None


class MiproV2:
    """DSPy's MIPROv2 with its independent work run concurrently; :meth:`compile` returns DSPy's program."""

    def __init__(self, *, metric: Callable[..., Any], task_lm: Any, prompt_lm: Any, max_bootstrapped_demos: int,
                 max_labeled_demos: int, auto: str | None, num_candidates: int | None = None, num_threads: int = 8,
                 seed: int = 0, init_temperature: float = 1.0, max_errors: int | None = None,
                 metric_threshold: float | None = None, teacher_settings: dict[str, Any] | None = None,
                 spare_workers: int = 0, progress: Callable[[str], None] = lambda _m: None) -> None:
        self.metric, self.task_lm, self.prompt_lm = metric, task_lm, prompt_lm or task_lm
        self.max_bootstrapped_demos, self.max_labeled_demos = max_bootstrapped_demos, max_labeled_demos
        self.auto, self.num_candidates, self.num_threads, self.seed = auto, num_candidates, num_threads, seed
        self.init_temperature, self.max_errors, self.metric_threshold = init_temperature, max_errors, metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.spare_workers = spare_workers
        self.progress = progress

    def compile(self, student: Any, *, trainset: Sequence[Any], valset: Sequence[Any], num_trials: int | None = None,
                minibatch: bool = True, minibatch_size: int = 35, minibatch_full_eval_steps: int = 5,
                program_aware_proposer: bool = True, data_aware_proposer: bool = True, view_data_batch_size: int = 10,
                tip_aware_proposer: bool = True, fewshot_aware_proposer: bool = True) -> Any:
        if not trainset:
            raise ConfigError("MIPROv2 needs a non-empty training set; raise --limit or --train-size.")
        if not valset:
            raise ConfigError("MIPROv2 needs a validation set; raise --limit or --val-size.")
        if minibatch_full_eval_steps < 1:
            raise ConfigError("minibatch_full_eval_steps must be at least 1.")
        zero_shot = self.max_bootstrapped_demos == 0 and self.max_labeled_demos == 0
        max_errors = self.max_errors if self.max_errors is not None else int(dspy.settings.max_errors)
        rng = random.Random(self.seed)
        program = student.deepcopy()
        predictors = len(program.predictors())
        plan = plan_mipro(auto=self.auto, num_candidates=self.num_candidates, num_trials=num_trials,
                          minibatch=minibatch, predictors=predictors, zero_shot=zero_shot, valset=valset, rng=rng)
        if plan.minibatch and minibatch_size > len(plan.valset):
            raise ConfigError(f"MIPROv2's minibatch_size {minibatch_size} exceeds the {len(plan.valset)} validation "
                              "examples; lower -o minibatch_size or pass -o minibatch=false.")
        budget = DemoBudget(
            labeled=LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT if zero_shot else self.max_labeled_demos,
            bootstrapped=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT if zero_shot else self.max_bootstrapped_demos,
            metric=self.metric, metric_threshold=self.metric_threshold, max_errors=max_errors,
            teacher_settings=self.teacher_settings,
        )
        recipes = mipro_recipes(trainset, plan.demo_sets, budget, rng)
        proposals = draw_proposals(predictors, min(plan.instructions, max(len(recipes), 1)), rng,
                                   random_tips=tip_aware_proposer)
        # Read before any pool thread runs: CPython 3.11's AST conversion is not thread-safe, and a
        # source read that fails while another thread parses silently drops the program-aware proposer.
        source = _program_source(program) if program_aware_proposer else None
        caller = contextvars.copy_context()
        with dspy.context(lm=self.task_lm):
            on_task_lm = contextvars.copy_context()
        self.progress(f"bootstrapping {len(recipes)} demo sets, proposing {plan.instructions} instructions")
        with WorkPool(self.num_threads, spare=self.spare_workers) as pool:
            built = start_candidates(pool, recipes, program, budget, context=on_task_lm, progress=self.progress)
            demo_sets: dict[int, list[Any]] = {i: [[] for _ in recipes] for i in range(predictors)}
            filled = [map_result(future, _filler(demo_sets, j)) for j, future in enumerate(built)]
            default_score = pool.evaluate(program, plan.valset, self.metric, max_errors=max_errors,
                                          context=on_task_lm)
            summary: Future[Any] | None = None
            if data_aware_proposer:
                summary = pool.submit(create_dataset_summary, list(trainset), view_data_batch_size, self.prompt_lm,
                                      context=caller, priority=WorkPool.CHAIN)
            proposer = InstructionProposer(
                program=program, trainset=trainset, prompt_lm=self.prompt_lm, program_code=source,
                use_task_demos=fewshot_aware_proposer, tip_aware=tip_aware_proposer,
                demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT, init_temperature=self.init_temperature,
            )
            instructions, proposed = start_proposals(pool, proposer, proposals, program, demo_candidates=demo_sets,
                                                     filled_sets=filled, summary=summary, context=caller,
                                                     progress=self.progress)
            steps = [*filled, *proposed.values()]
            search = TrialSearch(
                pool, program=program, valset=plan.valset, metric=self.metric, instructions=instructions,
                demo_sets=None if zero_shot else demo_sets, instruction_ready=proposed, demo_set_ready=filled,
                steps_done=when_all(steps), rng=rng, seed=self.seed, num_trials=plan.num_trials,
                minibatch=plan.minibatch, minibatch_size=minibatch_size, full_eval_every=minibatch_full_eval_steps,
                max_errors=max_errors, context=on_task_lm, progress=self.progress,
            )
            best = search.run(default_score)
            gather(steps)  # a bootstrap or proposal no trial used still fails the run, as in DSPy
        return best


def _filler(demo_sets: dict[int, list[Any]], index: int) -> Callable[[Any], Any]:
    def fill(program: Any) -> Any:
        for i, predictor in enumerate(program.predictors()):
            demo_sets[i][index] = predictor.demos
        return program

    return fill
