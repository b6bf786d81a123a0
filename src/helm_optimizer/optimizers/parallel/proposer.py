"""MIPROv2's instruction proposals: random draws taken up front, each proposal run once what it reads exists.

A proposal is DSPy's public ``GroundedProposer.propose_instruction_for_predictor``, called on a
copy of one configured proposer. MIPROv2 shares one generator between all its steps; a proposal
draws a tip (when tips are random) and then a rollout id from it, predictor by predictor and demo
set by demo set. :func:`draw_proposals` takes those draws in that order and hands each proposal a
generator in the state the shared one had when the proposal drew its rollout id, so the proposals
can run in any order and still make DSPy's requests.

MIPROv2 replaces each predictor's first proposal with the predictor's own instruction, so that
proposal's draws are taken but it is never run.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from dspy.propose.grounded_proposer import TIPS, GroundedProposer

from helm_optimizer.optimizers.parallel.workpool import WorkPool, copy_outcome, map_result, then, when_all

__all__ = ["InstructionProposer", "Proposal", "draw_proposals", "start_proposals"]

logger = logging.getLogger(__name__)

_ROLLOUT_IDS = (0, 10**9)  # the range GroundedProposer draws a proposal's rollout id from


@dataclass(frozen=True)
class Proposal:
    predictor: int
    demo_set: int
    tip: str | None  # None: tips are not random and the proposer's own tip setting applies
    generator_state: Any

    def generator(self) -> random.Random:
        rng = random.Random()
        rng.setstate(self.generator_state)
        return rng


def draw_proposals(predictors: int, per_predictor: int, rng: random.Random, *, random_tips: bool) -> list[Proposal]:
    """Every proposal's draws from MIPROv2's generator ``rng``, in the order DSPy takes them."""
    proposals = []
    tip_names = list(TIPS)
    for predictor in range(predictors):
        for demo_set in range(per_predictor):
            tip = TIPS[rng.choice(tip_names)] if random_tips else None
            state = rng.getstate()
            rng.randint(*_ROLLOUT_IDS)  # the proposal draws the same number again from `state`
            proposals.append(Proposal(predictor, demo_set, tip, state))
    return proposals


class InstructionProposer:
    """One configured ``GroundedProposer``; :meth:`propose` runs a proposal on a copy of it."""

    def __init__(self, *, program: Any, trainset: Sequence[Any], prompt_lm: Any, program_code: str | None,
                 use_task_demos: bool, tip_aware: bool, demos_in_context: int, init_temperature: float) -> None:
        # Built without the program source or the dataset summary: the caller provides both, read and
        # made elsewhere (the summary on the pool, the source before any pool thread runs).
        self._template = GroundedProposer(
            prompt_model=prompt_lm, program=program, trainset=list(trainset), use_dataset_summary=False,
            program_aware=False, use_task_demos=use_task_demos, num_demos_in_context=demos_in_context,
            use_instruct_history=False, use_tip=tip_aware, set_tip_randomly=tip_aware, set_history_randomly=False,
            verbose=False, rng=random.Random(0), init_temperature=init_temperature,
        )
        if program_code is not None:
            self._template.program_aware = True
            self._template.program_code_string = program_code

    @property
    def demos_in_context(self) -> int:
        return int(self._template.num_demos_in_context)

    @property
    def reads_demos(self) -> bool:
        return bool(self._template.use_task_demos)

    def use_summary(self, summary: str | None) -> None:
        self._template.use_dataset_summary = summary is not None
        self._template.data_summary = summary

    def propose(self, proposal: Proposal, program: Any, demo_candidates: Any) -> str:
        proposer = copy.copy(self._template)
        proposer.rng = proposal.generator()
        if proposal.tip is not None:
            proposer.use_tip = bool(proposal.tip)
        return str(proposer.propose_instruction_for_predictor(
            program=program, predictor=program.predictors()[proposal.predictor], pred_i=proposal.predictor,
            demo_candidates=demo_candidates, demo_set_i=proposal.demo_set, trial_logs={}, tip=proposal.tip,
        ))


def _summary_taken(proposer: InstructionProposer, summary: Future[Any]) -> Future[None]:
    """Done once the dataset summary is in the proposer; a failed summary means proposing without one."""
    out: Future[None] = Future()

    def take(done: Future[Any]) -> None:
        if done.cancelled():
            out.cancel()
            return
        if done.exception() is not None:
            logger.warning("The dataset summary failed (%s); proposing instructions without it.", done.exception())
            proposer.use_summary(None)
        else:
            proposer.use_summary(str(done.result()))
        out.set_result(None)

    summary.add_done_callback(take)
    return out


def _sets_read(filled: Sequence[Future[Any]], demos: Sequence[Sequence[Any]], first: int, wanted: int) -> Future[None]:
    """Done once the demo sets a proposal for set ``first`` reads are filled in ``demos``.

    The proposal collects bootstrapped demos from its own set, then the sets after it, then the sets
    before it, and stops once it has ``wanted``; ``filled[i]`` is done once ``demos[i]`` is.
    """
    order = [*range(first, len(filled)), *range(first)]
    out: Future[None] = Future()

    def visit(position: int, seen: int) -> None:
        while position < len(order) and seen < wanted:
            pending = filled[order[position]]
            if not pending.done():
                pending.add_done_callback(lambda _done, p=position, s=seen: visit(p, s))
                return
            if pending.cancelled() or pending.exception() is not None:
                copy_outcome(pending, out)
                return
            seen += sum(1 for demo in demos[order[position]] if "augmented" in demo)
            position += 1
        if not out.done():
            out.set_result(None)

    visit(0, 0)
    return out


def start_proposals(pool: WorkPool, proposer: InstructionProposer, proposals: Sequence[Proposal], program: Any, *,
                    demo_candidates: dict[int, list[Any]], filled_sets: Sequence[Future[Any]],
                    summary: Future[Any] | None, context: Any,
                    progress: Callable[[str], None] = lambda _m: None) -> tuple[dict[int, list[str]],
                                                                                dict[tuple[int, int], Future[str]]]:
    """Each predictor's instruction candidates (slot 0: its own instruction, the others filled in as their
    proposals end) and a future per proposal that runs, keyed ``(predictor, demo set)``."""
    ready = _summary_taken(proposer, summary) if summary is not None else None
    candidates: dict[int, list[str]] = {}
    futures: dict[tuple[int, int], Future[str]] = {}
    for proposal in proposals:
        slots = candidates.setdefault(proposal.predictor, [])
        if proposal.demo_set == 0:
            slots.append(program.predictors()[proposal.predictor].signature.instructions)
            continue
        slots.append("")
        deps = [] if ready is None else [ready]
        if proposer.reads_demos:
            deps.append(_sets_read(filled_sets, demo_candidates[proposal.predictor], proposal.demo_set,
                                   proposer.demos_in_context))

        def run(_: Any, proposal: Proposal = proposal) -> Future[str]:
            return pool.submit(proposer.propose, proposal, program, demo_candidates, context=context,
                               priority=WorkPool.CHAIN)

        def keep(text: str, slots: list[str] = slots, index: int = len(slots) - 1,
                 predictor: int = proposal.predictor) -> str:
            slots[index] = text
            progress(f"proposed instruction {index} for predictor {predictor}")
            return text

        futures[(proposal.predictor, proposal.demo_set)] = map_result(then(when_all(deps), run), keep)
    return candidates, futures
