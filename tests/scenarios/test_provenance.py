"""An agent's provenance and its own text, checked against the instances an evaluation scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helm_optimizer.errors import ConfigError, LeakageError
from helm_optimizer.scenarios.contamination import Question
from helm_optimizer.scenarios.provenance import EvaluatedSplit, check_agent_state, check_provenance

QUESTIONS = (
    Question("Which vitamin deficiency causes scurvy in sailors on long voyages?", ("Vitamin C", "Vitamin D",
             "Vitamin K", "Vitamin B12"), ("Vitamin C",), "1"),
    Question("Which organ produces insulin in the human body?", ("Pancreas", "Liver", "Kidney", "Spleen"),
             ("Pancreas",), "2"),
)
SPLIT = EvaluatedSplit(ids=("1", "2", "3", "4"), questions=QUESTIONS, groups={}, fingerprint="fp")


def _meta(ids: list[str], **extra: Any) -> dict[str, Any]:
    return {"optimized_on": {"ids": ids, "seed": 0, "fold": 0, "test_fingerprint": "fp", "model": "m", **extra},
            "contamination": {"optimization_data": {"compared_with": "held-out fold"}}}


def test_intersection_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"optimized on 1 of the 2 instances this run would score \(e\.g\. id 2"):
        check_provenance(_meta(["test:2", "test:3"]), agent=Path("a.json"), evaluated=["1", "2"], split=SPLIT,
                         model="m")


def test_disjoint_is_verified_and_changes_are_flagged() -> None:
    ok = check_provenance(_meta(["test:3", "train:1"]), agent=Path("a.json"), evaluated=["1", "2"], split=SPLIT,
                          model="m")
    assert (ok["verified"], ok["overlap"], ok["problems"]) == (True, 0, [])
    changed = check_provenance(_meta(["test:3"], test_fingerprint="old", model="other"), agent=Path("a.json"),
                               evaluated=["1"], split=SPLIT, model="m")
    assert [p.split(" ")[1] for p in changed["problems"]] == ["test", "agent"]
    unknown = check_provenance(None, agent=Path("a.json"), evaluated=["1"], split=SPLIT, model="m")
    assert unknown["verified"] is False and "unknown" in unknown["problems"][0]
    old = _meta(["test:3"])
    old.pop("contamination")
    assert "not checked for near-duplicates" in check_provenance(
        old, agent=Path("a.json"), evaluated=["1"], split=SPLIT, model="m")["problems"][0]


def _agent(demos: list[dict[str, str]], instructions: str) -> dict[str, Any]:
    return {"predict": {"demos": demos, "signature": {"instructions": instructions, "fields": []}},
            "metadata": {"dependency_versions": {}}}


def test_quoting_instruction_is_refused_or_replaced() -> None:
    q = QUESTIONS[0]
    quoting = "Answer like this example: " + q.stem + " Options: " + "; ".join(q.options) + ". Answer: A"
    state = _agent([{"inputs": "What is 2+2?", "output": "4"}], quoting)
    with pytest.raises(LeakageError, match="0 of its 1 demos and 1 of its 1 instructions quote a test question"):
        check_agent_state(state, QUESTIONS, on_overlap="refuse", default_instruction="Default.", where="agent")
    dropped = check_agent_state(state, QUESTIONS, on_overlap="drop", default_instruction="Default.", where="agent")
    assert dropped.cleaned is not None and dropped.cleaned["predict"]["signature"]["instructions"] == "Default."
    assert dropped.cleaned["predict"]["demos"] == state["predict"]["demos"]  # the clean demo stays
    assert state["predict"]["signature"]["instructions"] == quoting  # the input is not modified


def test_quoting_demo_is_dropped() -> None:
    q = QUESTIONS[1]
    demo = {"inputs": q.stem + "\nA. Pancreas\nB. Liver\nC. Kidney\nD. Spleen\nAnswer:", "output": "A"}
    state = _agent([demo, {"inputs": "Unrelated question text?", "output": "B"}], "Answer the question.")
    result = check_agent_state(state, QUESTIONS, on_overlap="drop", default_instruction="x", where="agent")
    assert (result.demos, result.quoting_demos, result.quoting_instructions) == (2, 1, 0)
    assert result.cleaned is not None and [d["output"] for d in result.cleaned["predict"]["demos"]] == ["B"]
    clean = check_agent_state(state, QUESTIONS[:1], on_overlap="refuse", default_instruction="x", where="agent")
    assert not clean.found and clean.cleaned is None
