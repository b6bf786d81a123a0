"""Built-in optimizers: DSPy's, under DSPy's names, plus the zero-shot baselines.

``BootstrapFewShotWithRandomSearch`` and ``MIPROv2`` produce the same programs as DSPy's classes for
the same seed and LM answers, but build their independent candidates concurrently (see
:mod:`helm_optimizer.optimizers.parallel`), which is where DSPy spends most of its wall time.
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

from helm_optimizer.errors import ConfigError
from helm_optimizer.optimizers.base import OptimizeContext, register_optimizer
from helm_optimizer.optimizers.parallel import DemoBudget, MiproV2, random_search

__all__ = [
    "BootstrapFewShotOptimizer",
    "GEPAOptimizer",
    "LabeledFewShotOptimizer",
    "MIPROv2Optimizer",
    "RandomSearchOptimizer",
    "SIMBAOptimizer",
    "ZeroShotCoTOptimizer",
    "ZeroShotPredictOptimizer",
]

logger = logging.getLogger(__name__)


def _spare_workers(context: OptimizeContext) -> int:
    """Extra pool threads when the LMs' usage meter already holds the calls in flight to ``num_threads``.

    A pool thread spends part of each task outside its LM call (formatting, parsing, scoring); a few
    spare threads keep all ``num_threads`` call slots busy meanwhile. For LMs without that bound (not
    built by ``build_lm`` with a meter) the pool itself is the bound and has no spare threads.
    """

    def bounded(lm: Any) -> bool:
        slots = getattr(getattr(lm, "meter", None), "slots", None)
        return slots is not None and int(slots.limit) <= context.num_threads

    if bounded(context.task_lm) and bounded(context.prompt_lm or context.task_lm):
        return max(1, context.num_threads // 4)
    return 0


class _Base:
    name: ClassVar[str] = ""
    program: ClassVar[str | None] = None
    needs_valset: ClassVar[bool] = False
    accepted_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        unknown = set(options or {}) - self.accepted_options
        if unknown:
            known = ", ".join(sorted(self.accepted_options)) or "none"
            raise ConfigError(f"Optimizer {self.name} does not take option(s) {', '.join(sorted(unknown))} "
                              f"(it takes: {known}).")
        self.options = dict(options or {})


@register_optimizer("ZeroShotPredict")
class ZeroShotPredictOptimizer(_Base):
    """``dspy.Predict("inputs -> output")`` as is: the DSPy zero-shot baseline."""

    program = "predict"

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        return student.reset_copy()


@register_optimizer("ZeroShotCoT")
class ZeroShotCoTOptimizer(_Base):
    """``dspy.ChainOfThought("inputs -> output")`` as is: the DSPy zero-shot CoT baseline."""

    program = "cot"

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        return student.reset_copy()


@register_optimizer("LabeledFewShot")
class LabeledFewShotOptimizer(_Base):
    """``max_labeled_demos`` training examples as demos, sampled with the run's seed.

    (DSPy's ``LabeledFewShot`` always samples with seed 0; this one honours ``--seed``.)
    """

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        program = student.reset_copy()
        k = min(context.max_labeled_demos, len(trainset))
        rng = random.Random(context.seed)
        for predictor in program.predictors():
            predictor.demos = rng.sample(list(trainset), k)
        return program


@register_optimizer("BootstrapFewShot")
class BootstrapFewShotOptimizer(_Base):
    """DSPy's ``BootstrapFewShot`` over the training set shuffled with the run's seed."""

    accepted_options = frozenset({"max_rounds", "metric_threshold", "max_errors"})

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        import dspy

        shuffled = list(trainset)
        random.Random(context.seed).shuffle(shuffled)
        optimizer = dspy.BootstrapFewShot(
            metric=context.metric,
            max_bootstrapped_demos=context.max_bootstrapped_demos,
            max_labeled_demos=context.max_labeled_demos,
            **self.options,
        )
        return optimizer.compile(student, trainset=shuffled)


@register_optimizer("BootstrapFewShotWithRandomSearch")
class RandomSearchOptimizer(_Base):
    """DSPy's random search over bootstrapped demo sets, with the candidates built and scored concurrently.

    The candidates are DSPy's: no demos, labeled demos only, a bootstrap over the training set as
    given, then ``num_candidate_programs`` (default 16) bootstraps over the training set shuffled by
    ``random.Random(seed + k)``; the best score on the validation set wins, ties going to the
    earliest candidate. DSPy's random search has no seed and equals ours with ``--seed 0``; with
    seed ``s`` ours tries DSPy's shuffled candidates ``s .. s + N - 1`` (DSPy's ``restrict``).
    """

    needs_valset = True
    accepted_options = frozenset({"num_candidate_programs", "max_rounds", "metric_threshold", "max_errors",
                                  "stop_at_score"})

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        budget = DemoBudget(
            labeled=context.max_labeled_demos, bootstrapped=context.max_bootstrapped_demos, metric=context.metric,
            max_rounds=int(self.options.get("max_rounds", 1)), metric_threshold=self.options.get("metric_threshold"),
            max_errors=self.options.get("max_errors"),
        )
        stop_at = self.options.get("stop_at_score")
        result = random_search(
            student, trainset, valset or trainset, context.metric, budget,
            candidates=int(self.options.get("num_candidate_programs", 16)), seed=context.seed,
            num_threads=context.num_threads, spare_workers=_spare_workers(context),
            stop_at_score=None if stop_at is None else float(stop_at),
            progress=context.progress,
        )
        program = result.program
        program.candidate_scores = result.scores
        return program


@register_optimizer("MIPROv2")
class MIPROv2Optimizer(_Base):
    """DSPy's MIPROv2 (instructions + demos, Bayesian search), its independent work run concurrently.

    ``--auto`` picks DSPy's preset unless ``num_candidates`` is given (then ``num_trials`` is needed
    too). Unlike DSPy, whose default minibatch of 35 fails on a smaller validation set, the minibatch
    is at most the validation set, and a validation set no larger than it is scored whole.
    """

    needs_valset = True
    accepted_options = frozenset({"num_candidates", "num_trials", "minibatch", "minibatch_size",
                                  "init_temperature", "max_errors", "metric_threshold",
                                  "program_aware_proposer", "data_aware_proposer", "tip_aware_proposer",
                                  "fewshot_aware_proposer", "view_data_batch_size"})
    _init_keys = ("num_candidates", "init_temperature", "max_errors", "metric_threshold")

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        if len(valset) < 2:
            raise ConfigError("MIPROv2 needs a validation set of at least 2 examples; raise --val-size or --limit.")
        init = {k: self.options[k] for k in self._init_keys if k in self.options}
        compile_kwargs = {k: v for k, v in self.options.items() if k not in self._init_keys}
        optimizer = MiproV2(
            metric=context.metric, task_lm=context.task_lm, prompt_lm=context.prompt_lm,
            max_bootstrapped_demos=context.max_bootstrapped_demos, max_labeled_demos=context.max_labeled_demos,
            auto=None if "num_candidates" in init else context.auto, num_threads=context.num_threads,
            spare_workers=_spare_workers(context), seed=context.seed, progress=context.progress, **init,
        )
        compile_kwargs.setdefault("minibatch_size", min(35, len(valset)))
        if len(valset) <= int(compile_kwargs["minibatch_size"]):
            compile_kwargs.setdefault("minibatch", False)
        return optimizer.compile(student, trainset=trainset, valset=valset, **compile_kwargs)


@register_optimizer("GEPA")
class GEPAOptimizer(_Base):
    """DSPy's GEPA: reflective instruction evolution driven by textual feedback from the HELM metric."""

    needs_valset = True
    accepted_options = frozenset({"max_metric_calls", "max_full_evals", "reflection_minibatch_size",
                                  "candidate_selection_strategy", "use_merge", "max_merge_invocations",
                                  "skip_perfect_score"})

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        import dspy

        keys = ("max_metric_calls", "max_full_evals")
        budget: dict[str, Any] = {k: self.options[k] for k in keys if k in self.options}
        if not budget:
            budget = {"auto": context.auto or "light"}
        rest = {k: v for k, v in self.options.items() if k not in ("max_metric_calls", "max_full_evals")}
        optimizer = dspy.GEPA(
            metric=context.feedback_metric, reflection_lm=context.prompt_lm or context.task_lm,
            num_threads=context.num_threads, seed=context.seed, track_stats=False, **budget, **rest,
        )
        return optimizer.compile(student, trainset=trainset, valset=valset or None)


@register_optimizer("SIMBA")
class SIMBAOptimizer(_Base):
    """DSPy's SIMBA (stochastic introspective mini-batch ascent)."""

    accepted_options = frozenset({"bsize", "num_candidates", "max_steps", "max_demos"})

    def compile(self, student: Any, *, trainset: list[Any], valset: list[Any], context: OptimizeContext) -> Any:
        import dspy

        pool = list(trainset) + list(valset)
        bsize = int(self.options.get("bsize", min(32, len(pool))))
        if len(pool) < bsize or bsize < 1:
            raise ConfigError(f"SIMBA needs at least bsize={bsize} examples (has {len(pool)}); raise --limit.")
        optimizer = dspy.SIMBA(
            metric=context.metric, bsize=bsize,
            num_candidates=int(self.options.get("num_candidates", 4)),
            max_steps=int(self.options.get("max_steps", 4)),
            max_demos=int(self.options.get("max_demos", max(1, context.max_bootstrapped_demos))),
            prompt_model=context.prompt_lm, num_threads=context.num_threads,
        )
        return optimizer.compile(student, trainset=pool, seed=context.seed)
