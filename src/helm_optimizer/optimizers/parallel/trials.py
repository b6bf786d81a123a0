"""MIPROv2's step 3: a Bayesian search over instruction and demo-set choices with optuna's ask/tell API.

The search is DSPy's (the facts are taken from its description and checked by the parity tests):

* optuna's ``TPESampler(seed=seed, multivariate=True)`` maximizes the score; the unoptimized
  program enters the study first, as a finished trial choosing index 0 everywhere with its score on
  the whole validation set;
* each trial chooses, predictor by predictor, an instruction and (unless zero-shot) a demo set,
  and is scored on the validation set, or with minibatches on a sample of ``minibatch_size`` drawn
  from MIPROv2's generator; without minibatches a better score makes the trial's program the best;
* with minibatches, after every ``full_eval_every``-th trial and after the last one, the choice with
  the best mean minibatch score that has not had a full evaluation yet (DSPy's
  ``get_program_with_highest_avg_score``) is scored on the whole validation set; that score enters
  the study as one more finished trial and is the only way to become the best program.

What is ours is the schedule. The sampler draws at random, whatever the scores, while fewer than its
``n_startup_trials`` trials are finished; trials asked in that phase are asked together and each is
evaluated as soon as the instruction and demo set it chose exist. A trial that needs a full
evaluation after it ends such a batch, and every trial is told in order, so each ask sees the study
DSPy's sequential loop would show it.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import optuna
from dspy.teleprompt.utils import create_minibatch, get_program_with_highest_avg_score

from helm_optimizer.optimizers.parallel.workpool import WorkPool, then, when_all

__all__ = ["TrialSearch", "startup_trials"]

logger = logging.getLogger(__name__)


def startup_trials() -> int:
    """Finished trials a default-built TPE sampler waits for before it models the scores."""
    return int(inspect.signature(optuna.samplers.TPESampler).parameters["n_startup_trials"].default)


def _instruction_param(predictor: int) -> str:
    return f"{predictor}_predictor_instruction"


def _demos_param(predictor: int) -> str:
    return f"{predictor}_predictor_demos"


def _failure(future: Future[Any]) -> BaseException | None:
    if not future.done():
        return None
    if future.cancelled():
        return RuntimeError("cancelled")
    return future.exception()


@dataclass
class _Trial:
    asked: optuna.trial.Trial
    params: dict[str, int]
    program: Any
    inputs_ready: Future[None]
    score: Future[float]

    @property
    def key(self) -> str:
        return repr(sorted(self.params.items()))


class TrialSearch:
    """Step 3 of one MIPROv2 run on ``pool``; :meth:`run` returns the best program."""

    def __init__(self, pool: WorkPool, *, program: Any, valset: Sequence[Any], metric: Callable[..., Any],
                 instructions: dict[int, list[str]], demo_sets: dict[int, list[Any]] | None,
                 instruction_ready: dict[tuple[int, int], Future[str]], demo_set_ready: Sequence[Future[Any]],
                 steps_done: Future[None], rng: random.Random, seed: int, num_trials: int, minibatch: bool,
                 minibatch_size: int, full_eval_every: int, max_errors: int | None, context: contextvars.Context,
                 progress: Callable[[str], None] = lambda _m: None) -> None:
        self.pool, self.program, self.valset, self.metric = pool, program, list(valset), metric
        self.instructions, self.demo_sets = instructions, demo_sets
        self.instruction_ready, self.demo_set_ready = instruction_ready, demo_set_ready
        self.steps_done = steps_done
        self.rng, self.num_trials = rng, num_trials
        self.minibatch, self.full_eval_every = minibatch, full_eval_every
        self.sample_size = minibatch_size if minibatch and minibatch_size < len(self.valset) else None
        self.max_errors, self.context, self.progress = max_errors, context, progress
        self.predictors = len(program.predictors())
        self.choices: dict[str, range] = {}
        for i in range(self.predictors):
            self.choices[_instruction_param(i)] = range(len(instructions[i]))
            if demo_sets:
                self.choices[_demos_param(i)] = range(len(demo_sets[i]))
        self.space: dict[str, optuna.distributions.BaseDistribution] = {
            name: optuna.distributions.CategoricalDistribution(choices) for name, choices in self.choices.items()}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize",
                                         sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True))
        self.startup = startup_trials()
        self.scores_by_choice: dict[str, list[tuple[float, Any, dict[str, int]]]] = defaultdict(list)
        self.fully_evaluated: set[str] = set()
        self.best_score = 0.0
        self.best_program: Any = None
        # ("trial" or "full evaluation", the choices, the score), in the order they enter the study
        self.history: list[tuple[str, dict[str, int], float]] = []

    # -- the loop -----------------------------------------------------------------------------
    def run(self, default_score: Future[float]) -> Any:
        self.best_score, self.best_program = self._score(default_score), self.program.deepcopy()
        # All instruction choices first, then all demo-set choices: the order DSPy enters them in.
        unoptimized = {name: 0 for name in sorted(self.space, key=lambda name: name.endswith("_demos"))}
        self.study.add_trial(optuna.trial.create_trial(params=unoptimized, distributions=self.space,
                                                       value=self.best_score))
        told = 0
        while told < self.num_trials:
            batch = [self._ask()]
            while self._may_ask_another(told, len(batch)):
                batch.append(self._ask())
            for trial in batch:
                self._wait(trial.score)
                failed = _failure(trial.inputs_ready)
                if failed is not None:
                    raise failed
                score = self._score(trial.score)
                told += 1
                self.scores_by_choice[trial.key].append((score, trial.program, trial.params))
                self.history.append(("trial", trial.params, score))
                if not self.minibatch and score > self.best_score:
                    self.best_score, self.best_program = score, trial.program.deepcopy()
                if self._full_evaluation_after(told):
                    self._full_evaluation()
                self.study.tell(trial.asked, score)
            self.progress(f"trial {told}/{self.num_trials}: best score {self.best_score}")
        return self.best_program

    def _full_evaluation_after(self, told: int) -> bool:
        return self.minibatch and (told % self.full_eval_every == 0 or told == self.num_trials)

    def _may_ask_another(self, told: int, batch: int) -> bool:
        """Whether the next trial may be asked before the ``batch`` trials asked so far are told.

        Only while the sampler is still drawing at random in DSPy's sequential loop (where the batch's
        trials would be finished), and not past a trial that a full evaluation follows.
        """
        if told + batch >= self.num_trials or self._full_evaluation_after(told + batch):
            return False
        finished = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                  optuna.trial.TrialState.PRUNED))
        return len(finished) + batch < self.startup

    # -- one trial ----------------------------------------------------------------------------
    def _ask(self) -> _Trial:
        asked = self.study.ask()
        # Suggested in DSPy's order (instruction, then demo set, predictor by predictor): the order
        # decides which random draw goes to which choice.
        params = {name: int(asked.suggest_categorical(name, choices)) for name, choices in self.choices.items()}
        devset = self.valset if self.sample_size is None else create_minibatch(self.valset, self.sample_size, self.rng)
        needed: list[Future[Any]] = []
        for i in range(self.predictors):
            proposal = self.instruction_ready.get((i, params[_instruction_param(i)]))
            if proposal is not None:
                needed.append(proposal)
            if self.demo_sets:
                needed.append(self.demo_set_ready[params[_demos_param(i)]])
        program = self.program.deepcopy()
        ready = when_all(needed)
        score = then(ready, lambda _: self._evaluate(self._fill(program, params), devset))
        return _Trial(asked, params, program, ready, score)

    def _fill(self, program: Any, params: dict[str, int]) -> Any:
        for i, predictor in enumerate(program.predictors()):
            text = self.instructions[i][params[_instruction_param(i)]]
            predictor.signature = predictor.signature.with_instructions(text)
            if self.demo_sets:
                predictor.demos = self.demo_sets[i][params[_demos_param(i)]]
        return program

    def _full_evaluation(self) -> None:
        program, mean, key, params = get_program_with_highest_avg_score(self.scores_by_choice, self.fully_evaluated)
        logger.info("Full evaluation of the choice with the best mean minibatch score (%s)", mean)
        score = self._score(self._evaluate(program, self.valset))
        self.study.add_trial(optuna.trial.create_trial(params=params, distributions=self.space, value=score))
        self.fully_evaluated.add(key)
        self.history.append(("full evaluation", dict(params), score))
        if score > self.best_score:
            self.best_score, self.best_program = score, program.deepcopy()

    # -- waiting and scoring ------------------------------------------------------------------
    def _evaluate(self, program: Any, devset: Sequence[Any]) -> Future[float]:
        return self.pool.evaluate(program, devset, self.metric, max_errors=self.max_errors, context=self.context)

    def _wait(self, future: Future[Any]) -> None:
        """Wait for ``future``, raising at once if a bootstrap or proposal fails meanwhile."""
        if not self.steps_done.done():
            wait([future, self.steps_done], return_when=FIRST_COMPLETED)
        failed = _failure(self.steps_done)
        if failed is not None:
            raise failed
        wait([future])

    def _score(self, future: Future[float]) -> float:
        """The evaluation's score; one that fails scores 0, as in DSPy's MIPROv2."""
        self._wait(future)
        failed = _failure(future)
        if failed is None:
            return float(future.result())
        logger.error("An evaluation failed and scores 0: %s: %s", type(failed).__name__, failed)
        return 0.0
