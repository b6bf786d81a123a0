"""MedCalc-Bench corrected metric: extraction, scoring per category, and HELM v0.5.16's defects."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest
from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.metrics.medcalc_bench_metrics import MedCalcBenchMetric
from helm.benchmark.scenarios.scenario import CORRECT_TAG, Input, Instance, Output, Reference

from helm_optimizer.metrics.medcalc import (
    METRIC_NAME,
    GestationalAge,
    MedCalcBenchCorrectedMetric,
    answer_kind,
    extract_medcalc_answer,
    medcalc_score,
)
from helm_optimizer.scenarios.medical import LocalMedCalcBenchScenario

from .conftest import request_state

GA = "('10 weeks', '3 days')"


def _instance(gold: str, category: str, lower: str, upper: str) -> Instance:
    return Instance(
        input=Input(text="Patient note: ...\n\nQuestion: ...\n"),
        references=[Reference(Output(text=gold), tags=[CORRECT_TAG])],
        extra_data={"category": category, "upper_limit": upper, "lower_limit": lower},
        split="test",
        id="1",
    )


def _ours(instance: Instance, completion: str | None) -> float:
    stats = MedCalcBenchCorrectedMetric().evaluate_generation(
        AdapterSpec(), request_state(instance, completion), None, ""
    )
    assert [s.name.name for s in stats] == [METRIC_NAME]
    return float(stats[0].sum)


def _helm(instance: Instance, completion: str) -> float:
    stats = MedCalcBenchMetric().evaluate_generation(
        AdapterSpec(), request_state(instance, completion), None, ""
    )
    return float(stats[0].sum)


# ---- extraction ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21.55", 21.55),
        ("The answer is 21.55", 21.55),
        ("The answer is 21.55.", 21.55),
        ("Score: 3", 3.0),
        ("3.0", 3.0),
        ("CrCl = (140 - 64) * 70 / (72 * 1.6); the answer is 46.2 mL/min", 46.2),
        ("eGFR 58.1 mL/min/1.73 m²", 58.1),
        ("BMI = 23.4 kg/m^2", 23.4),
        ("1,234.5 mL", 1234.5),
        ("-0.5", -0.5),
        ("no number here", None),
        ("", None),
        ("   ", None),
    ],
)
def test_extract_number(text: str, expected: float | None) -> None:
    assert extract_medcalc_answer(text, "number") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03/15/2021", date(2021, 3, 15)),
        ("The due date is 3/15/2021.", date(2021, 3, 15)),
        ("LMP 06/08/2020, so the due date is 03/15/2021", date(2021, 3, 15)),
        ("2021-03-15", date(2021, 3, 15)),
        ("March 15, 2021", date(2021, 3, 15)),
        ("13/45/2021", None),
        ("soon", None),
    ],
)
def test_extract_date(text: str, expected: date | None) -> None:
    assert extract_medcalc_answer(text, "date") == expected


@pytest.mark.parametrize(
    "text",
    [
        GA,
        "10 weeks and 3 days",
        "10 weeks, 3 days",
        "10w 3d",
        "(10, 3)",
        "The answer is ('10 weeks', '3 days').",
        "73 days",
    ],
)
def test_extract_gestational_age(text: str) -> None:
    assert extract_medcalc_answer(text, "gestational_age") == GestationalAge(10, 3)


def test_answer_kind() -> None:
    assert answer_kind("25.238") == "number"
    assert answer_kind("09/23/2014") == "date"
    assert answer_kind("('14 weeks', '1 days')") == "gestational_age"


# ---- score per category: correct, wrong, malformed, empty ------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "category", "lower", "upper", "expected"),
    [
        # lab and dosage: HELM v0.5.16 scores these 0 always
        ("46.5", "46.181", "lab", "43.87195", "48.49005", 1.0),
        ("The answer is 46.181 mL/min", "46.181", "lab", "43.87195", "48.49005", 1.0),
        ("40", "46.181", "lab", "43.87195", "48.49005", 0.0),
        ("7.5", "7.5", "dosage", "7.125", "7.875", 1.0),
        ("75", "7.5", "dosage", "7.125", "7.875", 0.0),
        ("90", "90", "physical", "85.5", "94.5", 1.0),
        ("94.5", "90", "physical", "85.5", "94.5", 1.0),  # limits inclusive
        ("94.6", "90", "physical", "85.5", "94.5", 0.0),
        ("2.155", "21.55", "dosage conversion", "20.4725", "22.6275", 0.0),  # no digit-string matching
        ("21.55", "21.55", "dosage conversion", "20.4725", "22.6275", 1.0),
        ("03/15/2021", "03/15/2021", "date", "03/15/2021", "03/15/2021", 1.0),
        ("03/16/2021", "03/15/2021", "date", "03/15/2021", "03/15/2021", 0.0),
        (GA, GA, "date", GA, GA, 1.0),
        ("10 weeks and 3 days", GA, "date", GA, GA, 1.0),
        ("10 weeks and 4 days", GA, "date", GA, GA, 0.0),
        # risk, severity, diagnosis: numeric equality
        ("4", "4", "risk", "4", "4", 1.0),
        ("4.0", "4", "risk", "4", "4", 1.0),
        ("Score: 4", "4", "risk", "4", "4", 1.0),
        ("5", "4", "risk", "4", "4", 0.0),
        ("1.5", "1.5", "risk", "1.425", "1.575", 1.0),
        ("12", "12", "severity", "12", "12", 1.0),
        ("2", "2", "diagnosis", "2", "2", 1.0),
        ("3", "2", "diagnosis", "2", "2", 0.0),
        # unknown numeric category: within limits
        ("10.2", "10", "other", "9.5", "10.5", 1.0),
        # malformed and empty
        ("unknown", "46.181", "lab", "43.87195", "48.49005", 0.0),
        ("tomorrow", "03/15/2021", "date", "03/15/2021", "03/15/2021", 0.0),
        ("", "4", "risk", "4", "4", 0.0),
        ("  ", GA, "date", GA, GA, 0.0),
        # unreadable limits fall back to the gold answer
        ("46.181", "46.181", "lab", "", "n/a", 1.0),
    ],
)
def test_medcalc_score(
    prediction: str, gold: str, category: str, lower: str, upper: str, expected: float
) -> None:
    assert medcalc_score(prediction, gold, category, lower, upper) == expected


# ---- HELM metric class -----------------------------------------------------------------------------


def test_fixed_lab_and_dosage_defect() -> None:
    """A correct lab (or dosage) answer scores 1 with ours and 0 with HELM v0.5.16 (helm #4351)."""
    lab = _instance("46.181", "lab", "43.87195", "48.49005")
    assert _ours(lab, "46.181") == 1.0
    assert _helm(lab, "46.181") == 0.0
    dosage = _instance("7.5", "dosage", "7.125", "7.875")
    assert _ours(dosage, "7.5") == 1.0
    assert _helm(dosage, "7.5") == 0.0


def test_fixed_raw_text_defect() -> None:
    """HELM calls float() on the whole completion, so any surrounding text scores 0."""
    physical = _instance("90", "physical", "85.5", "94.5")
    assert _ours(physical, "The answer is 90.") == 1.0
    assert _helm(physical, "The answer is 90.") == 0.0


def test_fixed_string_equality_defect() -> None:
    """HELM compares risk/severity/diagnosis answers as strings, so "4.0" is not "4"."""
    risk = _instance("4", "risk", "4", "4")
    assert _ours(risk, "4.0") == 1.0
    assert _helm(risk, "4.0") == 0.0


def test_metric_empty_and_missing_completions_score_zero() -> None:
    lab = _instance("46.181", "lab", "43.87195", "48.49005")
    assert _ours(lab, "") == 0.0
    assert _ours(lab, None) == 0.0  # HELM returns no stat at all here
    state = request_state(lab, "46.181")
    no_result = MedCalcBenchCorrectedMetric().evaluate_generation(
        AdapterSpec(), dataclasses.replace(state, result=None), None, ""
    )
    assert no_result[0].sum == 0.0


def test_metric_metadata() -> None:
    (metadata,) = MedCalcBenchCorrectedMetric().get_metadata()
    assert metadata.name == METRIC_NAME and metadata.lower_is_better is False and metadata.display_name


def test_metric_on_fixture_gold_answers(fixture_dir: Path, tmp_path: Path) -> None:
    """Every fixture row answered with its own ground truth scores 1, across all categories."""
    for instance in LocalMedCalcBenchScenario(data_dir=str(fixture_dir)).get_instances(str(tmp_path)):
        assert _ours(instance, instance.references[0].output.text) == 1.0, instance.extra_data


def test_real_data_gold_answers(real_data_dir: Path, tmp_path: Path) -> None:
    """On the real test set, the gold answers score 1,047/1,047 with ours and 680 with HELM (367 lost)."""
    instances = LocalMedCalcBenchScenario(data_dir=str(real_data_dir)).get_instances(str(tmp_path))
    ours = sum(_ours(i, i.references[0].output.text) for i in instances)
    helm = sum(_helm(i, i.references[0].output.text) for i in instances)
    assert (ours, helm) == (1047, 1047 - 367)


# ---- extraction defects fixed (hedged ranges, Unicode minus, negation, dates after the marker) ------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is between 21 and 40.", None),  # a hedge is no answer (was 21)
        ("The answer is 21-40", None),
        ("Answer: 21 to 40", None),
        ("So the answer is 5 or 6.", None),
        ("between 21 and 40", None),  # no marker: was 40
        ("The answer is −3.5", -3.5),  # U+2212 minus (was 3.5)
        ("The answer is not 5; it is 7.", 7.0),  # (was 5)
        ("It is 7, not 5.", 7.0),  # (was 5)
        ("The total is 3 - 1 = 2. The answer is 2.", 2.0),
        ("The answer is 1,234.5 mL", 1234.5),
    ],
)
def test_number_extraction_fixes(text: str, expected: float | None) -> None:
    assert extract_medcalc_answer(text, "number") == expected


def test_dates_and_gestational_ages_honour_the_marker() -> None:
    text = "The answer is 09/23/2014. I first thought of 10/01/2014."
    assert extract_medcalc_answer(text, "date") == date(2014, 9, 23)  # was the last date, 10/01/2014
    assert extract_medcalc_answer("On 10/01/2014 and 09/23/2014", "date") == date(2014, 9, 23)
    ga = "The answer is (14 weeks, 1 days); not 15 weeks 2 days"
    assert extract_medcalc_answer(ga, "gestational_age") == GestationalAge(14, 1)


def test_hedged_answer_scores_zero() -> None:
    assert medcalc_score("The answer is between 21 and 40.", "30", "lab", "21", "40") == 0.0
    assert medcalc_score("The answer is 30.", "30", "lab", "21", "40") == 1.0
