"""MIPROv2's grounded instruction proposer, each proposal started as soon as what it reads exists."""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import dspy
from dspy.propose.grounded_proposer import TIPS, GenerateModuleInstruction, GroundedProposer
from dspy.propose.utils import create_predictor_level_history_string, strip_prefix

from helm_optimizer.optimizers.parallel.workpool import WorkPool, copy_outcome, map_result, resolved, then, when_all

__all__ = ["MAX_HISTORY", "ParallelProposer"]

logger = logging.getLogger(__name__)

MAX_HISTORY = 5


class ParallelProposer(GroundedProposer):  # type: ignore[misc]
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
        ready = self._after_summary(summary) if summary is not None else resolved(None)
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

                futures[(pred_i, demo_set_i)] = map_result(then(when_all(deps), submit), fill)
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
                    copy_outcome(done, out)
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
