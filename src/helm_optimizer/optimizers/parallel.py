"""Concurrent construction and scoring of independent optimizer candidates.

DSPy builds random-search and MIPROv2 demo candidates one after another, each a sequential
bootstrap over the training set, proposes MIPROv2 instructions one LM call at a time, and scores
candidates one ``Evaluate`` at a time. Most of that work does not depend on the rest: here every
random choice is drawn first, in DSPy's order and from DSPy's generators, and the LM work then runs
on one :class:`WorkPool` per compile as soon as what it needs exists:

* each bootstrap (a chain of calls that must run one at a time) holds one worker, and chains go
  before single evaluation calls, which fill the other workers;
* each evaluation is split into its examples, and a candidate is scored as soon as it is built;
* MIPROv2's dataset summary and its score of the unoptimized program start with the bootstraps,
  each instruction proposal starts once the demo sets it reads exist, and the Optuna trials drawn
  in the sampler's random start-up phase (whose suggestions do not depend on scores) are asked
  together and evaluated as soon as the instruction and demos they picked exist.

At most ``num_threads`` LM calls are in flight, whatever the LM. For the same seed and the same LM
answers the result is the program DSPy would return; scores are computed as ``dspy.Evaluate``
computes them (``round(100 * mean, 2)``, a failed example scoring 0). MIPROv2 makes one proposal
fewer per predictor (three calls with the program-aware proposer): DSPy proposes an instruction for
slot 0 and then overwrites it with the original one; here that proposal's random draws are taken
but its calls are not made.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import json
import logging
import queue
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import dspy
from dspy.propose.dataset_summary_generator import create_dataset_summary
from dspy.propose.grounded_proposer import TIPS, GenerateModuleInstruction, GroundedProposer
from dspy.propose.utils import create_predictor_level_history_string, strip_prefix
from dspy.teleprompt import MIPROv2
from dspy.teleprompt.mipro_optimizer_v2 import (
    BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
    LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT,
)
from dspy.teleprompt.utils import create_minibatch, get_signature, save_candidate_program, set_signature

__all__ = ["CandidatePlan", "ParallelMIPROv2", "WorkPool", "candidate_plans", "score_candidates", "start_candidates"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_HISTORY = 5


# ---------------------------------------------------------------------------------------------
# The pool and evaluation
# ---------------------------------------------------------------------------------------------
class WorkPool:
    """``num_threads`` workers running DSPy work, each task in a copy of the context it was submitted from.

    Tasks run by ``priority`` (:attr:`CHAIN` before :attr:`ITEM`), then in submission order: the
    sequential chains that everything else waits for (bootstraps, summaries, proposals) get a worker
    first, single evaluation calls fill the others. ``dspy.context(lm=...)`` around a submission
    applies to the task. Use as a context manager; leaving it cancels what has not started and
    waits for what has.
    """

    CHAIN = 0
    ITEM = 1

    def __init__(self, num_threads: int) -> None:
        self.num_threads = max(1, num_threads)
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.RLock()
        self._items: dict[Any, Future[Any]] = {}

    def __enter__(self) -> WorkPool:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
        self._cancel_queued()
        for _ in self._threads:
            self._queue.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join()
        self._cancel_queued()

    def _cancel_queued(self) -> None:
        while True:
            try:
                _, _, task = self._queue.get_nowait()
            except queue.Empty:
                return
            if task is not None:
                task[0].cancel()

    def submit(self, fn: Callable[..., T], *args: Any, context: contextvars.Context | None = None,
               priority: int = ITEM) -> Future[T]:
        future: Future[T] = Future()
        ctx = (context if context is not None else contextvars.copy_context()).copy()
        with self._lock:
            if self._closed:
                future.cancel()
                return future
            if len(self._threads) < self.num_threads:
                thread = threading.Thread(target=self._work, name=f"hopt-work-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._queue.put((priority, next(self._order), (future, ctx, fn, args)))
        return future

    def _work(self) -> None:
        while True:
            _, _, task = self._queue.get()
            if task is None:
                return
            future, ctx, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = ctx.run(fn, *args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shared_item(self, key: Any, fn: Callable[..., T], *args: Any, context: contextvars.Context) -> Future[T]:
        """``submit(fn, *args)`` unless a task with this key is running or done; failures are not kept."""
        with self._lock:
            known = self._items.get(key)
            if known is not None:
                return known
            future = self.submit(fn, *args, context=context)
            self._items[key] = future

        def forget_failure(done: Future[T]) -> None:
            if done.cancelled() or done.exception() is not None:
                with self._lock:
                    if self._items.get(key) is done:
                        del self._items[key]

        future.add_done_callback(forget_failure)
        return future

    def evaluate(self, program: Any, devset: Sequence[Any], metric: Callable[..., Any], *, max_errors: int | None,
                 failure_score: float = 0.0, context: contextvars.Context | None = None) -> Future[float]:
        """``dspy.Evaluate(devset, metric)(program).score``, one pool task per example.

        As in DSPy, an example that raises scores ``failure_score`` and the evaluation fails once
        ``max_errors`` examples raised (DSPy then stops starting the others; here they still run).
        """
        return _Evaluation(self, program, list(devset), metric, max_errors, failure_score, context).start()


def _program_key(program: Any) -> str:
    """Identical keys for programs that send identical requests (same demos and instructions)."""
    return json.dumps(program.dump_state(), sort_keys=True, default=str)


def _score_one(program: Any, metric: Callable[..., Any], example: Any) -> float:
    prediction = program(**example.inputs())
    return metric(example, prediction)  # type: ignore[no-any-return]


class _Evaluation:
    """One ``dspy.Evaluate`` call as pool items; an item already computed or running for an identical
    program and example is shared instead of asked again (what DSPy's LM cache does sequentially)."""

    def __init__(self, pool: WorkPool, program: Any, devset: list[Any], metric: Callable[..., Any],
                 max_errors: int | None, failure_score: float, context: contextvars.Context | None) -> None:
        self.pool = pool
        self.program = program
        self.devset = devset
        self.metric = metric
        self.limit = max_errors if max_errors is not None else dspy.settings.max_errors
        self.context = context if context is not None else contextvars.copy_context()
        self.scores: list[float] = [failure_score] * len(devset)
        self.errors = 0
        self.remaining = len(devset)
        self.lock = threading.Lock()
        self.result: Future[float] = Future()

    def start(self) -> Future[float]:
        if not self.devset:
            self.result.set_exception(ValueError("devset must contain at least one example, got an empty devset."))
            return self.result
        key = _program_key(self.program)
        for index, example in enumerate(self.devset):
            item = self.pool.shared_item((key, id(self.metric), id(example)), _score_one, self.program, self.metric,
                                         example, context=self.context)
            item.add_done_callback(functools.partial(self._done, index))
        return self.result

    def _done(self, index: int, item: Future[float]) -> None:
        failed = item.cancelled() or item.exception() is not None
        if failed:
            logger.error("Error for %s: %s", self.devset[index], "cancelled" if item.cancelled() else item.exception())
        with self.lock:
            if failed:
                self.errors += 1
            else:
                self.scores[index] = item.result()
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            if self.errors >= self.limit:
                self.result.set_exception(RuntimeError(
                    f"Evaluation cancelled: {self.errors} examples raised errors (max_errors={self.limit})."))
            else:
                self.result.set_result(round(100 * sum(self.scores) / len(self.devset), 2))


def _copy_outcome(source: Future[Any], target: Future[Any]) -> None:
    """Give ``target`` the result, failure or cancellation of the finished ``source`` (once)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


def _then(first: Future[Any], step: Callable[[Any], Future[T]]) -> Future[T]:
    """A future for ``step(first.result())`` (itself a future), failing if either fails."""
    out: Future[T] = Future()

    def run(done: Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            _copy_outcome(done, out)
            return
        try:
            inner = step(done.result())
        except Exception as exc:
            if not out.done():
                out.set_exception(exc)
            return
        inner.add_done_callback(lambda finished: _copy_outcome(finished, out))

    first.add_done_callback(run)
    return out


def _map(first: Future[Any], fn: Callable[[Any], T]) -> Future[T]:
    """A future for ``fn(first.result())``, computed in the thread that completes ``first``."""
    return _then(first, lambda value: _resolved(fn(value)))


def _when_all(futures: Sequence[Future[Any]]) -> Future[None]:
    """Done when every future is; fails with the first failure."""
    out: Future[None] = Future()
    if not futures:
        out.set_result(None)
        return out
    remaining = [len(futures)]
    lock = threading.Lock()

    def one(done: Future[Any]) -> None:
        with lock:
            if out.done():
                return
            if done.cancelled() or done.exception() is not None:
                _copy_outcome(done, out)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                out.set_result(None)

    for future in futures:
        future.add_done_callback(one)
    return out


def _resolved(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


def gather(futures: Sequence[Future[T]]) -> list[T]:
    """Results in order; the first failure is raised once it happens (the pool's exit stops the rest)."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in futures:
        if future in done and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------
# Demo candidates (random search and MIPROv2 step 1)
# ---------------------------------------------------------------------------------------------
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

    return [pool.submit(tracked, plan, priority=WorkPool.CHAIN) if plan.uses_lm else _resolved(tracked(plan))
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

    scores = [_then(program, score(i)) for i, program in enumerate(programs)]
    return gather(programs), gather(scores)


# ---------------------------------------------------------------------------------------------
# MIPROv2
# ---------------------------------------------------------------------------------------------
class _ParallelProposer(GroundedProposer):  # type: ignore[misc]
    """GroundedProposer whose instruction proposals start as soon as what they read exists.

    Every random draw is taken in DSPy's order when :meth:`start` is called; each proposal then runs
    on the pool once the dataset summary and the demo sets it reads (its own set and the following
    ones, until it has ``num_demos_in_context`` bootstrapped demos) are there. MIPROv2 replaces each
    predictor's first proposal with its original instruction, so that proposal's draws are taken but
    its LM calls are not made.
    """

    def start(self, program: Any, demo_candidates: Any, count: int, *, pool: WorkPool,
              demo_sets: Sequence[Future[Any]], summary: Future[Any] | None
              ) -> tuple[dict[int, list[str]], dict[tuple[int, int], Future[Any]]]:
        """``propose_instructions_for_program(..., N=count)`` as placeholders filled in place, and a
        future per proposal ``(predictor, index)``."""
        if self.set_history_randomly:
            self.use_instruct_history = self.rng.random() < 0.5
        if not demo_candidates:
            self.use_task_demos = False
            num_demos = count
        else:
            num_demos = max(len(demo_candidates[0]), 1)
        ready = self._after_summary(summary) if summary is not None else _resolved(None)
        proposed: dict[int, list[str]] = {}
        futures: dict[tuple[int, int], Future[Any]] = {}
        context = contextvars.copy_context()
        for pred_i, predictor in enumerate(program.predictors()):
            for demo_set_i in range(num_demos)[: min(count, num_demos)]:
                tip = None
                if self.set_tip_randomly:
                    tip = TIPS[self.rng.choice(list(TIPS.keys()))]
                    self.use_tip = bool(tip)
                rollout_id = self.rng.randint(0, 10**9)
                slot = proposed.setdefault(pred_i, [])
                slot.append("")
                if demo_set_i == 0:
                    continue  # replaced by the original instruction
                settings = {"use_tip": self.use_tip, "use_task_demos": self.use_task_demos,
                            "use_instruct_history": self.use_instruct_history}
                job = functools.partial(self._propose_one, program, predictor, pred_i, demo_candidates, demo_set_i,
                                        {}, tip, rollout_id, settings)
                deps = [ready]
                if settings["use_task_demos"] and demo_candidates:
                    deps.append(self._demos_read(demo_candidates, demo_sets, pred_i, demo_set_i))

                def submit(_: Any, job: Callable[[], str] = job) -> Future[str]:
                    return pool.submit(job, context=context, priority=WorkPool.CHAIN)

                def fill(text: str, slot: list[str] = slot, index: int = len(slot) - 1) -> None:
                    slot[index] = text

                futures[(pred_i, demo_set_i)] = _map(_then(_when_all(deps), submit), fill)
        return proposed, futures

    def _after_summary(self, summary: Future[Any]) -> Future[None]:
        """Done when the dataset summary is; as ``GroundedProposer.__init__``, a failed one means none."""
        out: Future[None] = Future()

        def take(done: Future[Any]) -> None:
            if done.cancelled():
                out.cancel()
                return
            if done.exception() is not None:
                logger.warning("Error getting data summary: %s; proposing without it.", done.exception())
                self.use_dataset_summary = False
            else:
                self.data_summary = done.result()
                self.use_dataset_summary = True
            out.set_result(None)

        summary.add_done_callback(take)
        return out

    def _demos_read(self, demo_candidates: Any, demo_sets: Sequence[Future[Any]], pred_i: int,
                    demo_set_i: int) -> Future[None]:
        """Done once every demo set ``GenerateModuleInstruction`` will read for this proposal is filled."""
        count = len(demo_candidates[pred_i])
        order = [demo_set_i, *range(demo_set_i + 1, count), *range(demo_set_i)]
        out: Future[None] = Future()

        def step(k: int, found: int) -> None:
            if k == len(order) or found >= self.num_demos_in_context:
                out.set_result(None)
                return

            def next_set(done: Future[Any]) -> None:
                if done.cancelled() or done.exception() is not None:
                    _copy_outcome(done, out)
                    return
                demos = demo_candidates[pred_i][order[k]]
                step(k + 1, found + sum(1 for demo in demos if "augmented" in demo.keys()))  # noqa: SIM118 (as DSPy)

            demo_sets[order[k]].add_done_callback(next_set)

        step(0, 0)
        return out

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


def _startup_trials(sampler_cls: type[Any]) -> int:
    """How many finished trials a default-built TPE sampler waits for before it models the scores."""
    return int(inspect.signature(sampler_cls.__init__).parameters["n_startup_trials"].default)


_COMPILE_DEFAULTS = {name: p.default for name, p in inspect.signature(MIPROv2.compile).parameters.items()
                     if p.default is not inspect.Parameter.empty}


class ParallelMIPROv2(MIPROv2):  # type: ignore[misc]
    """DSPy's MIPROv2 run as a dataflow on one :class:`WorkPool`; the program DSPy would return.

    Steps 1 and 2 return at once with placeholders that fill in as the pool works: demo sets as
    their bootstraps end, instructions as their proposals end. The dataset summary and the score of
    the unoptimized program start with the bootstraps. Step 3 asks Optuna for trials in DSPy's order;
    trials drawn in the sampler's random start-up phase (whose suggestions do not depend on scores)
    are asked together, and each is evaluated once the instruction and demos it picked exist.
    """

    progress: Callable[[str], None] = staticmethod(lambda _message: None)  # type: ignore[assignment]

    def compile(self, student: Any, **kwargs: Any) -> Any:
        self._options = {**_COMPILE_DEFAULTS, **kwargs}
        self._valset: list[Any] | None = None
        self._default_score: Future[float] | None = None
        self._summary: Future[Any] | None = None
        self._demo_sets: list[Future[Any]] = []
        self._instructions: dict[tuple[int, int], Future[Any]] = {}
        with WorkPool(self.num_threads or 1) as pool:
            self._pool = pool
            try:
                return super().compile(student, **kwargs)
            finally:
                self._pool = None  # type: ignore[assignment]

    def _set_hyperparams_from_run_mode(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._set_hyperparams_from_run_mode(*args, **kwargs)
        self._valset = result[1]
        return result

    def _bootstrap_fewshot_examples(self, program: Any, trainset: list[Any], seed: int, teacher: Any, *,
                                    num_fewshot_candidates: int, max_bootstrapped_demos: int,
                                    max_labeled_demos: int, max_errors: int | None,
                                    metric_threshold: float | None) -> Any:
        zeroshot = max_bootstrapped_demos == 0 and max_labeled_demos == 0
        pool = self._pool
        self.progress(f"bootstrapping {num_fewshot_candidates} demo sets")
        plans = candidate_plans(
            program, trainset, metric=self.metric, num_candidate_sets=num_fewshot_candidates,
            max_labeled=LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_labeled_demos,
            max_bootstrapped=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT if zeroshot else max_bootstrapped_demos,
            shuffle_rng=self.rng, max_errors=max_errors if max_errors is not None else dspy.settings.max_errors,
            metric_threshold=metric_threshold, teacher=teacher, teacher_settings=self.teacher_settings,
        )
        predictors = range(len(program.predictors()))
        demo_candidates: dict[int, list[Any]] = {i: [[] for _ in plans] for i in predictors}

        def fill(index: int) -> Callable[[Any], None]:
            def run(built: Any) -> None:
                for i in predictors:
                    demo_candidates[i][index] = built.predictors()[i].demos

            return run

        self._demo_sets = [_map(f, fill(j)) for j, f in enumerate(start_candidates(pool, plans, self.progress))]
        # Needed later, independent of the demos: the dataset summary and the unoptimized program's score.
        if self._options["data_aware_proposer"]:
            self._summary = pool.submit(create_dataset_summary, trainset, self._options["view_data_batch_size"],
                                        self.prompt_model, priority=WorkPool.CHAIN)
        if self._valset is not None:
            self._default_score = pool.evaluate(program, self._valset, self.metric, max_errors=max_errors)
        return demo_candidates

    def _propose_instructions(self, program: Any, trainset: list[Any], demo_candidates: Any,
                              view_data_batch_size: int, program_aware_proposer: bool, data_aware_proposer: bool,
                              tip_aware_proposer: bool, fewshot_aware_proposer: bool,
                              num_instruct_candidates: int) -> dict[int, list[str]]:
        self.progress(f"proposing {num_instruct_candidates} instructions")
        summary = self._summary if data_aware_proposer else None
        proposer = _ParallelProposer(
            program=program, trainset=trainset, prompt_model=self.prompt_model,
            view_data_batch_size=view_data_batch_size, program_aware=program_aware_proposer,
            use_dataset_summary=data_aware_proposer and summary is None, use_task_demos=fewshot_aware_proposer,
            num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT, use_tip=tip_aware_proposer,
            set_tip_randomly=tip_aware_proposer, use_instruct_history=False, set_history_randomly=False,
            verbose=False, rng=self.rng, init_temperature=self.init_temperature,
        )
        candidates, self._instructions = proposer.start(
            program, demo_candidates, num_instruct_candidates, pool=self._pool, demo_sets=self._demo_sets,
            summary=summary,
        )
        for i, predictor in enumerate(program.predictors()):
            candidates[i][0] = get_signature(predictor).instructions
        self.progress("searching instruction/demo combinations")
        return candidates

    @staticmethod
    def _score(future: Future[float]) -> float:
        """``eval_candidate_program(...).score``: an evaluation that fails scores 0."""
        try:
            return float(future.result())
        except Exception:
            logger.error("An exception occurred during evaluation", exc_info=True)
            return 0.0

    def _settle_steps_1_and_2(self) -> None:
        """Wait for every bootstrap and proposal; raise the first failure (as DSPy's steps 1-2 would)."""
        gather([*self._demo_sets, *self._instructions.values()])

    def _failed_steps_1_and_2(self) -> None:
        for future in [*self._demo_sets, *self._instructions.values()]:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def _optimize_prompt_parameters(self, program: Any, instruction_candidates: dict[int, list[str]],
                                    demo_candidates: Any, evaluate: Any, valset: list[Any], num_trials: int,
                                    minibatch: bool, minibatch_size: int, minibatch_full_eval_steps: int,
                                    seed: int) -> Any:
        """DSPy's step 3: the same Optuna study, trials and bookkeeping, with trials evaluated concurrently."""
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pool = self._pool
        max_errors = evaluate.max_errors if evaluate.max_errors is not None else dspy.settings.max_errors
        context = contextvars.copy_context()

        def evaluation(candidate: Any, devset: list[Any]) -> Future[float]:
            return pool.evaluate(candidate, devset, evaluate.metric, max_errors=max_errors,
                                 failure_score=evaluate.failure_score, context=context)

        extra_full_eval = 1 if num_trials % minibatch_full_eval_steps != 0 else 0
        adjusted_num_trials = int((num_trials + num_trials // minibatch_full_eval_steps + 1 + extra_full_eval)
                                  if minibatch else num_trials)
        early = self._default_score if valset is self._valset else None
        default_score = self._score(early if early is not None else evaluation(program, valset))
        trial_logs: dict[int, dict[str, Any]] = {1: {
            "full_eval_program_path": save_candidate_program(program, self.log_dir, -1),
            "full_eval_score": default_score, "total_eval_calls_so_far": len(valset),
            "full_eval_program": program.deepcopy(),
        }}
        best_score, best_program = default_score, program.deepcopy()
        total_eval_calls = len(valset)
        score_data: list[dict[str, Any]] = [{"score": best_score, "program": program.deepcopy(), "full_eval": True}]
        param_score_dict: dict[str, list[Any]] = defaultdict(list)
        fully_evaled_param_combos: dict[str, Any] = {}

        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        default_params = {f"{i}_predictor_instruction": 0 for i in range(len(program.predictors()))}
        if demo_candidates:
            default_params.update({f"{i}_predictor_demos": 0 for i in range(len(program.predictors()))})
        study.add_trial(optuna.trial.create_trial(
            params=default_params,
            distributions=self._get_param_distributions(program, instruction_candidates, demo_candidates),
            value=default_score,
        ))
        startup = _startup_trials(optuna.samplers.TPESampler)
        batch_size = minibatch_size if minibatch else len(valset)

        def full_eval_after(trial_num: int) -> bool:
            return minibatch and (trial_num % (minibatch_full_eval_steps + 1) == 0
                                  or trial_num == adjusted_num_trials - 1)

        def candidate_for(trial: Any, trial_num: int, devset: list[Any]) -> tuple[Any, list[str], dict[str, int],
                                                                                   Future[float]]:
            candidate = program.deepcopy()
            chosen: list[str] = []
            raw: dict[str, int] = {}
            picks: list[tuple[int, int, int | None]] = []
            for i, _ in enumerate(candidate.predictors()):
                instruction = trial.suggest_categorical(f"{i}_predictor_instruction",
                                                        range(len(instruction_candidates[i])))
                trial_logs[trial_num][f"{i}_predictor_instruction"] = instruction
                chosen.append(f"Predictor {i}: Instruction {instruction}")
                raw[f"{i}_predictor_instruction"] = instruction
                demos = None
                if demo_candidates:
                    demos = trial.suggest_categorical(f"{i}_predictor_demos", range(len(demo_candidates[i])))
                    trial_logs[trial_num][f"{i}_predictor_demos"] = demos
                    chosen.append(f"Predictor {i}: Few-Shot Set {demos}")
                    raw[f"{i}_predictor_demos"] = demos
                picks.append((i, instruction, demos))
            needed = [self._instructions[(i, k)] for i, k, _ in picks if (i, k) in self._instructions]
            needed += [self._demo_sets[d] for _, _, d in picks if d is not None]

            def run(_: Any) -> Future[float]:
                for (i, k, d), predictor in zip(picks, candidate.predictors(), strict=True):
                    set_signature(predictor, get_signature(predictor).with_instructions(instruction_candidates[i][k]))
                    if d is not None:
                        predictor.demos = demo_candidates[i][d]
                return evaluation(candidate, devset)

            return candidate, chosen, raw, _then(_when_all(needed), run)

        done = 0
        while done < num_trials:
            self._failed_steps_1_and_2()
            # Trials asked while fewer than `startup` trials are finished are drawn at random whatever the
            # scores, so they can be asked together. A full evaluation (which adds a trial) ends a batch.
            finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            batch: list[tuple[Any, Any, list[str], dict[str, int], Future[float]]] = []
            while done + len(batch) < num_trials:
                independent = finished + len(batch) < startup
                if batch and not independent:
                    break
                trial = study.ask()
                trial_num = trial.number + 1
                trial_logs[trial_num] = {}
                devset = valset if batch_size >= len(valset) else create_minibatch(valset, batch_size, self.rng)
                batch.append((trial, *candidate_for(trial, trial_num, devset)))
                if not independent or full_eval_after(trial_num):
                    break
            for trial, candidate, chosen, raw, future in batch:
                trial_num = trial.number + 1
                wait([future])
                self._failed_steps_1_and_2()
                score = self._score(future)
                total_eval_calls += batch_size
                if not minibatch and score > best_score:
                    best_score, best_program = score, candidate.deepcopy()
                score_data.append({"score": score, "program": candidate, "full_eval": batch_size >= len(valset)})
                if minibatch:
                    self._log_minibatch_eval(score, best_score, batch_size, chosen, score_data, trial,
                                             adjusted_num_trials, trial_logs, trial_num, candidate, total_eval_calls)
                else:
                    self._log_normal_eval(score, best_score, chosen, score_data, trial, num_trials, trial_logs,
                                          trial_num, valset, batch_size, candidate, total_eval_calls)
                param_score_dict[",".join(map(str, chosen))].append((score, candidate, raw))
                if full_eval_after(trial_num):
                    self._settle_steps_1_and_2()  # the full evaluation runs on DSPy's own threads
                    best_score, best_program, total_eval_calls = self._perform_full_evaluation(
                        trial_num, adjusted_num_trials, param_score_dict, fully_evaled_param_combos, evaluate,
                        valset, trial_logs, total_eval_calls, score_data, best_score, best_program, study,
                        instruction_candidates, demo_candidates,
                    )
                study.tell(trial, score)
                done += 1
            self.progress(f"trial {done}/{num_trials}: best score {best_score}")
        self._settle_steps_1_and_2()

        if best_program is not None and self.track_stats:
            best_program.trial_logs = trial_logs
            best_program.score = best_score
            best_program.prompt_model_total_calls = self.prompt_model_total_calls
            best_program.total_calls = self.total_calls
            ranked = sorted(score_data, key=lambda x: x["score"], reverse=True)
            best_program.mb_candidate_programs = [s for s in ranked if not s["full_eval"]]
            best_program.candidate_programs = [s for s in ranked if s["full_eval"]]
        return best_program
