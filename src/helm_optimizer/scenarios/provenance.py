"""What an agent was made from, checked against what it is evaluated on.

Two checks, both on the agent's own records and the scenario's test split:

* **Provenance** (:func:`check_provenance`): the ids of the examples an agent was optimized on
  (stored by ``optimize`` in its metadata, ``optimized_on``) must not intersect the instances an
  evaluation run scores. For agents optimized on data outside the test split, ``optimize`` already
  compared that data with the *whole* test split, so every evaluation subset is clean; what is
  checked then is that the test split is still the one the agent was checked against.
* **Contamination of the agent itself** (:func:`check_agent_state`): its demos and instructions
  must not quote a test question (:func:`helm_optimizer.scenarios.contamination.find_quoted`).
  This covers agents written elsewhere (imported) as well as instructions an optimizer wrote
  (a proposer can copy training text into them). ``refuse`` stops with a one-line error;
  ``drop`` removes the quoting demos and puts the program's default instruction in place of a
  quoting one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_optimizer._io import fingerprint, write_json_atomic
from helm_optimizer.errors import ConfigError, LeakageError
from helm_optimizer.helm.subsets import eval_plan, instance_groups
from helm_optimizer.scenarios.contamination import Question, find_quoted, question_of
from helm_optimizer.scenarios.dataset import is_multiple_choice, scenario_instances, test_split_fingerprint

__all__ = [
    "AgentContamination",
    "EvaluatedSplit",
    "agent_questions",
    "check_agent_for_run",
    "check_agent_state",
    "check_provenance",
    "load_test_split",
    "optimized_on",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluatedSplit:
    """A scenario's whole test split: ids, questions, fold groups and fingerprint."""

    ids: tuple[str, ...]
    questions: tuple[Question, ...]
    groups: Mapping[str, str]
    fingerprint: str

    def evaluated(self, *, seed: int, eval_limit: int | None, num_folds: int, fold: int | None) -> list[str]:
        """The ids one evaluation run scores (the same plan HELM's evaluation scenario applies)."""
        folds = eval_plan(list(self.ids), seed=seed, eval_limit=eval_limit, num_folds=num_folds, groups=self.groups)
        return folds[fold] if fold is not None else [i for f in folds for i in f]

    def questions_of(self, ids: Sequence[str]) -> list[Question]:
        wanted = set(ids)
        return [q for q in self.questions if q.id in wanted]


def load_test_split(task: Any, cache_root: Path) -> EvaluatedSplit:
    """The test split of a HELM task (from the local instance cache when current)."""
    test = [i for i in scenario_instances(task, cache_root) if i.split == task.main_split]
    multiple_choice = is_multiple_choice(task)
    rule = task.profile.fold_group if task.profile is not None else None
    return EvaluatedSplit(ids=tuple(str(i.id) for i in test),
                     questions=tuple(question_of(i, multiple_choice=multiple_choice) for i in test),
                     groups=instance_groups(test, rule), fingerprint=test_split_fingerprint(test))


def optimized_on(dataset: Any, *, seed: int, optimizer_seed: int, eval_limit: int | None, model: str,
                 prompt_model: str | None) -> dict[str, Any]:
    """The ``optimized_on`` block of an agent's metadata: everything evaluation checks it against."""
    ids = sorted(dataset.train_ids + dataset.val_ids)
    return {
        "ids": ids, "ids_fingerprint": fingerprint(ids), "seed": seed, "optimizer_seed": optimizer_seed,
        "fold": dataset.fold if dataset.num_folds > 1 else None, "num_folds": dataset.num_folds,
        "eval_limit": eval_limit, "eval_ids_fingerprint": fingerprint(sorted(dataset.eval_ids)),
        "test_fingerprint": dataset.test_fingerprint, "data_fingerprint": dataset.fingerprint,
        "strategy": dataset.strategy, "model": model, "prompt_model": prompt_model,
    }


def check_provenance(meta: Mapping[str, Any] | None, *, agent: Path, evaluated: Sequence[str], split: EvaluatedSplit,
                     model: str) -> dict[str, Any]:
    """Refuse an evaluation scoring instances the agent was optimized on; describe the rest.

    Returns the record's ``provenance`` block: ``verified`` (the agent's optimization data is known
    and disjoint from the evaluated instances) and ``problems`` (what the report flags).
    """
    block: dict[str, Any] = {"agent": str(agent), "evaluated": len(evaluated),
                             "evaluated_fingerprint": fingerprint(sorted(evaluated)), "problems": []}
    source = (meta or {}).get("optimized_on")
    if not isinstance(source, Mapping) or not isinstance(source.get("ids"), list):
        block.update(verified=False, overlap=None)
        block["problems"].append("the agent's optimization data is unknown (no optimized_on in its metadata); "
                                 "overlap with the evaluated instances not verified")
        return block
    test_ids = {i.split(":", 1)[1] for i in source["ids"] if isinstance(i, str) and i.startswith("test:")}
    overlap = sorted(test_ids & set(evaluated), key=lambda s: (len(s), s))
    if overlap:
        raise ConfigError(
            f"The agent {agent} was optimized on {len(overlap)} of the {len(evaluated)} instances this run would "
            f"score (e.g. id {overlap[0]}; optimized with seed {source.get('seed')}, eval limit "
            f"{source.get('eval_limit')}, fold {source.get('fold')}); evaluate with the seed and limit it was "
            "optimized under, or optimize it again for this evaluation."
        )
    block.update(verified=True, overlap=0, optimized_on=len(source["ids"]),
                 optimized_on_fingerprint=source.get("ids_fingerprint"), seed=source.get("seed"),
                 optimizer_seed=source.get("optimizer_seed"), fold=source.get("fold"),
                 strategy=source.get("strategy"), model=source.get("model"))
    checked = ((meta or {}).get("contamination") or {}).get("optimization_data") or {}
    if not checked.get("compared_with"):
        block["problems"].append("the agent's optimization data was not checked for near-duplicates of the test "
                                 "split (metadata from an older version); optimize it again")
    if source.get("test_fingerprint") not in (None, split.fingerprint):
        block["problems"].append("the test split changed since the agent was optimized (its fingerprint differs)")
    if source.get("model") not in (None, model):
        block["problems"].append(f"the agent was optimized for {source.get('model')}, evaluated with {model}")
    return block


@dataclass
class AgentContamination:
    """Demos and instructions of one agent that quote test questions."""

    demos: int = 0
    quoting_demos: int = 0
    instructions: int = 0
    quoting_instructions: int = 0
    dropped: bool = False
    examples: list[str] = field(default_factory=list)
    cleaned: dict[str, Any] | None = None
    """The agent state without the quoting parts (``drop``), else None."""

    def as_dict(self) -> dict[str, Any]:
        return {"demos": self.demos, "quoting_demos": self.quoting_demos, "instructions": self.instructions,
                "quoting_instructions": self.quoting_instructions, "dropped": self.dropped}

    @property
    def found(self) -> bool:
        return bool(self.quoting_demos or self.quoting_instructions)


def _predictor_states(state: Any) -> Iterator[dict[str, Any]]:
    """Every predictor state (a dict with ``demos`` and a ``signature``) inside an agent's JSON state."""
    if isinstance(state, dict):
        if isinstance(state.get("demos"), list) and isinstance(state.get("signature"), dict):
            yield state
        for key, value in state.items():
            if key not in ("demos", "signature", "metadata"):
                yield from _predictor_states(value)
    elif isinstance(state, list):
        for value in state:
            yield from _predictor_states(value)


def _demo_text(demo: Any) -> str:
    if isinstance(demo, Mapping):
        return "\n".join(str(v) for k, v in demo.items() if not str(k).startswith("_") and isinstance(v, str))
    return str(demo)


def check_agent_state(state: Mapping[str, Any], questions: Sequence[Question], *, on_overlap: str,
                      default_instruction: str, where: str) -> AgentContamination:
    """Check an agent's demos and instructions against ``questions``; refuse or drop what quotes one.

    ``on_overlap``: ``refuse`` (a :class:`LeakageError`), ``drop`` (``cleaned`` holds the agent without
    the quoting parts) or ``count`` (only count them).
    """
    cleaned = copy.deepcopy(dict(state))
    predictors = list(_predictor_states(cleaned))
    demos = [(p, i, _demo_text(d)) for p in predictors for i, d in enumerate(p["demos"])]
    instructions = [(p, str(p["signature"].get("instructions") or "")) for p in predictors]
    found_demos = {m.text for m in find_quoted([t for _, _, t in demos], questions)}
    found_instr = {m.text for m in find_quoted([t for _, t in instructions], questions)}
    result = AgentContamination(demos=len(demos), quoting_demos=len(found_demos), instructions=len(instructions),
                                quoting_instructions=len(found_instr))
    result.examples = [demos[i][2][:120] for i in sorted(found_demos)][:3] + [
        instructions[i][1][:120] for i in sorted(found_instr)][:3]
    if not result.found:
        return result
    what = (f"{result.quoting_demos} of its {result.demos} demos and {result.quoting_instructions} of its "
            f"{result.instructions} instructions quote a test question")
    if on_overlap == "count":  # only report (``agents show``)
        return result
    if on_overlap == "refuse":
        raise LeakageError(f"{where}: {what} (e.g. {result.examples[0].splitlines()[0][:80]!r}); pass --on-overlap "
                           "drop to remove them, or use an agent optimized on other data.")
    drop = {(id(demos[i][0]), demos[i][1]) for i in found_demos}
    for predictor in predictors:
        predictor["demos"] = [d for i, d in enumerate(predictor["demos"]) if (id(predictor), i) not in drop]
    for i in found_instr:
        instructions[i][0]["signature"]["instructions"] = default_instruction
    logger.warning("%s: %s; dropped them (on_overlap=drop).", where, what)
    result.dropped = True
    result.cleaned = cleaned
    return result


def agent_questions(meta: Mapping[str, Any] | None, split: EvaluatedSplit) -> tuple[list[Question], str]:
    """The test questions an agent's text must not quote, and what they are.

    A cross-fitted agent (its metadata names its fold, seed and limit) is checked against its own
    fold, whose instances it is evaluated on; any other agent against the whole test split.
    """
    source = (meta or {}).get("optimized_on") or {}
    fold = source.get("fold") if isinstance(source, Mapping) else None
    if fold is not None:
        ids = split.evaluated(seed=int(source.get("seed") or 0), eval_limit=source.get("eval_limit"),
                              num_folds=int(source.get("num_folds") or 2), fold=int(fold))
        return split.questions_of(ids), f"the {len(ids)} test questions of fold {fold}"
    return list(split.questions), f"the {len(split.questions)} test questions"


def check_agent_for_run(split: EvaluatedSplit, *, agent: Path, meta: Mapping[str, Any] | None, agents_dir: Path,
                        output_dir: Path, seed: int, eval_limit: int | None, fold: int | None, num_folds: int,
                        model: str, on_overlap: str, label: str) -> tuple[Path, dict[str, Any]]:
    """Both checks for one evaluation run of ``agent``; returns the file to evaluate and the record's keys.

    Refuses (one-line error) an agent optimized on any instance the run scores, and an agent whose
    demos or instructions quote a test question unless ``on_overlap`` is ``drop``: the quoting parts
    are then removed in a copy under ``OUTPUT_DIR/agents-checked/``, which is what gets evaluated.
    A cross-fitted agent's demos come from the other folds by design, so its own fold is what they
    must not quote; any other agent's, the whole test split.
    """
    from helm_optimizer.agents.program import detect_program_kind, make_program, read_agent_json

    evaluated = split.evaluated(seed=seed, eval_limit=eval_limit, num_folds=num_folds if fold is not None else 1,
                                fold=fold)
    provenance = check_provenance(meta, agent=agent, evaluated=evaluated, split=split, model=model)
    questions = split.questions_of(evaluated) if fold is not None else list(split.questions)
    state = read_agent_json(agent)
    default = make_program(detect_program_kind(state)).predictors()[0].signature.instructions
    found = check_agent_state(state, questions, on_overlap=on_overlap, default_instruction=default, where=label)
    target = agent
    if found.cleaned is not None:
        target = output_dir / "agents-checked" / agent.relative_to(agents_dir)
        write_json_atomic(target, found.cleaned)
        provenance["problems"].append(
            f"{found.quoting_demos} demo(s) and {found.quoting_instructions} instruction(s) quoting test questions "
            "were dropped before evaluation")
    at_optimization = (meta or {}).get("contamination") or None
    return target, {"provenance": provenance,
                    "contamination": {"agent": found.as_dict(), "at_optimization": at_optimization}}
