"""MEDEC corrected metric: parsing, scores, and HELM v0.5.16's gold-sentence-id defect."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.metrics.medec_metrics import MedecMetric
from helm.benchmark.scenarios.scenario import CORRECT_TAG, Input, Instance, Output, Reference

from helm_optimizer.metrics.medec import (
    FLAG_METRIC,
    SENTENCE_METRIC,
    MedecCorrectedMetric,
    is_readable_medec_answer,
    medec_scores,
    parse_medec_answer,
)
from helm_optimizer.scenarios.medical import LocalMedecScenario

from .conftest import request_state

ERROR_GOLD = "3 He is diagnosed with community-acquired pneumonia."


def _instance(gold: str) -> Instance:
    return Instance(
        input=Input(text="0 First sentence.\n1 Second.\n2 Third.\n3 He is diagnosed with asthma."),
        references=[Reference(Output(text=gold), tags=[CORRECT_TAG])],
        split="test",
    )


def _ours(instance: Instance, completion: str | None) -> dict[str, float]:
    stats = MedecCorrectedMetric().evaluate_generation(
        AdapterSpec(), request_state(instance, completion), None, ""
    )
    return {s.name.name: float(s.sum) for s in stats}


def _helm(instance: Instance, completion: str) -> dict[str, float]:
    stats = MedecMetric().evaluate_generation(AdapterSpec(), request_state(instance, completion), None, "")
    return {s.name.name: float(s.sum) for s in stats}


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("CORRECT", (0, -1)),
        (" correct. \n", (0, -1)),
        ("Correct", (0, -1)),
        ("3 He is diagnosed with pneumonia.", (1, 3)),
        ("12", (1, 12)),
        ("Sentence 3 is wrong", (1, -2)),
        ("The text is correct.", (1, -2)),
    ],
)
def test_parse_medec_answer(text: str, parsed: tuple[int, int]) -> None:
    assert parse_medec_answer(text) == parsed


@pytest.mark.parametrize(
    ("prediction", "gold", "flag", "sentence"),
    [
        ("3 He is diagnosed with pneumonia.", ERROR_GOLD, 1.0, 1.0),  # right sentence, other correction
        ("2 Something else.", ERROR_GOLD, 1.0, 0.0),  # error seen, wrong sentence
        ("CORRECT", ERROR_GOLD, 0.0, 0.0),  # missed the error
        ("CORRECT", "CORRECT", 1.0, 1.0),
        ("correct.", "CORRECT", 1.0, 1.0),
        ("1 A made-up error.", "CORRECT", 0.0, 0.0),  # false alarm
        ("I think sentence 3.", ERROR_GOLD, 0.0, 0.0),  # unreadable: wrong (HELM counts it as a flag)
        ("I think sentence 3.", "CORRECT", 0.0, 0.0),
        ("", ERROR_GOLD, 0.0, 0.0),  # empty
        ("  ", "CORRECT", 0.0, 0.0),
    ],
)
def test_medec_scores(prediction: str, gold: str, flag: float, sentence: float) -> None:
    assert medec_scores(prediction, gold) == {FLAG_METRIC: flag, SENTENCE_METRIC: sentence}


def test_fixed_gold_sentence_id_defect() -> None:
    """A note with an error answered with the right sentence: ours 1, HELM v0.5.16 0 (int() of the gold)."""
    instance = _instance(ERROR_GOLD)
    assert _ours(instance, ERROR_GOLD) == {FLAG_METRIC: 1.0, SENTENCE_METRIC: 1.0}
    assert _helm(instance, ERROR_GOLD) == {
        "medec_error_flag_accuracy": 1.0,
        "medec_error_sentence_accuracy": 0.0,
    }


def test_agrees_with_helm_where_helm_is_right() -> None:
    for gold, prediction in [
        ("CORRECT", "CORRECT"),
        ("CORRECT", "2 x"),
        (ERROR_GOLD, "CORRECT"),
        ("CORRECT", "x"),
    ]:
        ours = _ours(_instance(gold), prediction)
        helm = _helm(_instance(gold), prediction)
        assert (ours[FLAG_METRIC], ours[SENTENCE_METRIC]) == (
            helm["medec_error_flag_accuracy"],
            helm["medec_error_sentence_accuracy"],
        )


def test_failure_is_wrong_where_helm_counts_it_as_a_flag() -> None:
    """An unreadable answer to a note with an error: HELM's flag accuracy 1, ours 0."""
    assert _helm(_instance(ERROR_GOLD), "x")["medec_error_flag_accuracy"] == 1.0
    assert _ours(_instance(ERROR_GOLD), "x") == {FLAG_METRIC: 0.0, SENTENCE_METRIC: 0.0}
    assert is_readable_medec_answer("3 fixed.") and is_readable_medec_answer(" correct. ")
    assert not is_readable_medec_answer("") and not is_readable_medec_answer("no idea")


def test_metric_missing_completion_scores_zero() -> None:
    assert _ours(_instance("CORRECT"), None) == {FLAG_METRIC: 0.0, SENTENCE_METRIC: 0.0}  # HELM raises here
    assert _ours(_instance("CORRECT"), "") == {FLAG_METRIC: 0.0, SENTENCE_METRIC: 0.0}


def test_metric_metadata() -> None:
    assert [m.name for m in MedecCorrectedMetric().get_metadata()] == [FLAG_METRIC, SENTENCE_METRIC]


def test_fixture_gold_answers(fixture_dir: Path, tmp_path: Path) -> None:
    for instance in LocalMedecScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path)):
        gold = instance.references[0].output.text
        assert _ours(instance, gold) == {FLAG_METRIC: 1.0, SENTENCE_METRIC: 1.0}


def test_real_data_gold_answers(real_data_dir: Path, tmp_path: Path) -> None:
    """Gold answers on the real test set: ours 597/597 sentence accuracy, HELM only the 286 CORRECT notes."""
    instances = LocalMedecScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    ours = sum(_ours(i, i.references[0].output.text)[SENTENCE_METRIC] for i in instances)
    helm = sum(_helm(i, i.references[0].output.text)["medec_error_sentence_accuracy"] for i in instances)
    assert (ours, helm) == (597, 286)
