"""DSPy's MIPROv2 run as a dataflow on one work pool (see :mod:`helm_optimizer.optimizers.parallel`)."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

import dspy
from dspy.propose.dataset_summary_generator import create_dataset_summary
from dspy.propose.utils import get_dspy_source_code
from dspy.teleprompt import MIPROv2
from dspy.teleprompt.mipro_optimizer_v2 import (
    BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT,
    LABELED_FEWSHOT_EXAMPLES_IN_CONTEXT,
)
from dspy.teleprompt.utils import create_minibatch, get_signature, save_candidate_program, set_signature

from helm_optimizer.optimizers.parallel.candidates import candidate_plans, start_candidates
from helm_optimizer.optimizers.parallel.proposer import ParallelProposer
from helm_optimizer.optimizers.parallel.workpool import WorkPool, gather, map_result, then, when_all

__all__ = ["ParallelMIPROv2"]

logger = logging.getLogger(__name__)


def _program_code(program: Any) -> str | None:
    """``get_dspy_source_code(program)``, or None where DSPy's proposer would run without it."""
    try:
        return str(get_dspy_source_code(program))
    except Exception as exc:
        logger.warning("Error getting source code: %s; running without the program-aware proposer.", exc)
        return None


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
        # What GroundedProposer reads with inspect.getsource, read before any pool work: CPython 3.11's
        # AST conversion is not thread-safe ("AST constructor recursion depth mismatch" when another
        # thread parses at the same time), and DSPy then silently drops the program-aware proposer.
        self._program_code = _program_code(student)
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

        self._demo_sets = [map_result(f, fill(j)) for j, f in enumerate(start_candidates(pool, plans, self.progress))]
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
        proposer = ParallelProposer(
            program=program, trainset=trainset, prompt_model=self.prompt_model,
            view_data_batch_size=view_data_batch_size, program_aware=False,
            use_dataset_summary=data_aware_proposer and summary is None, use_task_demos=fewshot_aware_proposer,
            num_demos_in_context=BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT, use_tip=tip_aware_proposer,
            set_tip_randomly=tip_aware_proposer, use_instruct_history=False, set_history_randomly=False,
            verbose=False, rng=self.rng, init_temperature=self.init_temperature,
        )
        if program_aware_proposer and self._program_code is not None:
            proposer.program_aware, proposer.program_code_string = True, self._program_code
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

            return candidate, chosen, raw, then(when_all(needed), run)

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
