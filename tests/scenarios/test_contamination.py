"""Question-level contamination: near-duplicates the exact comparison missed, on fixtures and real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helm_optimizer.errors import LeakageError
from helm_optimizer.scenarios.contamination import (
    Question,
    find_duplicates,
    find_quoted,
    near_duplicate_groups,
    question_of,
)
from helm_optimizer.scenarios.dataset import load_dataset
from helm_optimizer.scenarios.overlap import find_overlap, normalize_text
from tests.conftest import REPO, shared_data_or_skip

DEMO_DATA = REPO / "src" / "helm_optimizer" / "data" / "demo"

TEST = Question(
    stem="A 45-year-old man presents with crushing chest pain radiating to the left arm. What is the next step?",
    options=("Aspirin", "Reassurance", "Antacids", "Discharge home"),
    answers=("Aspirin",),
)


def _kind(candidate: Question, test: Question = TEST) -> str | None:
    report = find_duplicates([candidate], [test])
    return report.matches[0].kind if report.matches else None


@pytest.mark.parametrize(
    ("candidate", "kind"),
    [
        (TEST, "exact"),
        (Question(TEST.stem.upper(), tuple(reversed(TEST.options)), TEST.answers), "normalized"),
        (Question(TEST.stem, (*TEST.options, "Morphine"), TEST.answers), "stem+answer"),  # a 5th distractor
        (Question(TEST.stem, TEST.options[:3], TEST.answers), "stem+answer"),  # a distractor removed
        (Question(TEST.stem, tuple(f"{c}) {o}" for c, o in zip("ABCD", TEST.options, strict=True)),
                  ("A) Aspirin",)), "normalized"),  # option letters prefixed
        (Question("Question 12: " + TEST.stem, TEST.options, TEST.answers), "stem+answer"),  # a prefix
        (Question(TEST.stem.replace("crushing", "severe"), TEST.options, TEST.answers), "stem+answer"),  # 1 word
        (Question(TEST.stem.replace("crushing", "severe"), TEST.options, ()), "stem+options"),
    ],
)
def test_near_duplicates_are_found(candidate: Question, kind: str) -> None:
    assert _kind(candidate) == kind
    # What the previous check compared (normalized stem + sorted options, exactly): only the first two.
    old = find_overlap([_canonical(candidate)], [_canonical(TEST)])
    assert old.has_overlap == (kind in ("exact", "normalized") and "A)" not in candidate.options[0])


def _canonical(q: Question) -> str:
    return normalize_text(q.stem) + " || " + " | ".join(sorted(normalize_text(o) for o in q.options))


def test_other_questions_are_not_duplicates() -> None:
    generic = Question("The glucocorticoids:", ("Raise glucose.", "Lower calcium."), ("Raise glucose.",))
    other = Question("The glucocorticoids:", ("Cause hirsutism.", "Are mineralocorticoids."), ("Cause hirsutism.",))
    assert _kind(other, generic) is None  # a generic stem asked with other options and answer
    short_in_long = Question("What is the next step?", TEST.options[:2], ("Reassurance",))
    assert _kind(short_in_long) is None
    note = "Patient note: Patient has a heart rate of {} bpm and a QT interval of 330 msec. Question: " \
           "Using the Bazett Formula for corrected QT interval, what is the patient's corrected QT interval in msec?"
    assert _kind(Question(note.format(131), (), ("356",)), Question(note.format(48), (), ("265",))) is None


def test_stem_ngram_pass_on_long_stems() -> None:
    long_stem = " ".join(f"word{i}" for i in range(30))
    test = Question(long_stem, (), ("1",))
    assert _kind(Question("Preamble text here. " + long_stem + " And an extra sentence.", (), ("2",)), test) == (
        "stem n-gram")


def test_quoted_in_free_text() -> None:
    demo = ("The following are multiple choice questions.\n" + TEST.stem + "\nA. Aspirin\nB. Reassurance\n"
            "C. Antacids\nD. Discharge home\nAnswer: A")
    assert [(m.text, m.test) for m in find_quoted([demo, "Think step by step."], [TEST])] == [(0, 0)]
    assert find_quoted([TEST.stem], [TEST]) == []  # the stem without its options is not this question
    template = Question("Heart rate of 131 bpm " + " ".join(f"w{i}" for i in range(25)), (), ("x",))
    assert find_quoted([template.stem.replace("131", "48")], [template]) == []
    assert len(find_quoted([template.stem], [template])) == 1


def test_groups() -> None:
    other = Question("Completely different question about kidneys and their function?", ("x", "y"), ("x",))
    groups = near_duplicate_groups([TEST, other, Question(TEST.stem, (*TEST.options, "Morphine"), TEST.answers)])
    assert groups == [0, 1, 0]


def _leak(tmp_path: Path, change: str) -> Path:
    data = tmp_path / "data"
    shutil.copytree(DEMO_DATA, data)
    head = data / "head_qa" / "HEAD_EN"
    test = json.loads((head / "test_HEAD_EN.json").read_text())
    dev = json.loads((head / "dev_HEAD_EN.json").read_text())
    leaked = json.loads(json.dumps(next(iter(test["exams"].values()))["data"][0]))
    if change == "5th distractor":
        leaked["answers"].append({"aid": len(leaked["answers"]) + 1, "atext": "None of the above."})
    elif change == "letters":
        for answer, letter in zip(leaked["answers"], "ABCDE", strict=False):
            answer["atext"] = f"{letter}) {answer['atext']}"
    elif change == "prefix":
        leaked["qtext"] = "Exam question 12: " + leaked["qtext"]
    next(iter(dev["exams"].values()))["data"].append(leaked)
    (head / "dev_HEAD_EN.json").write_text(json.dumps(dev))
    return data


@pytest.mark.parametrize("change", ["5th distractor", "letters", "prefix"])
def test_dataset_refuses_near_duplicates_of_any_test_question(change: str, tmp_path: Path) -> None:
    data = _leak(tmp_path, change)
    with pytest.raises(LeakageError, match="repeat one of the 60 test questions"):
        load_dataset("head_qa", data_dir=data, cache_dir=tmp_path / "c", eval_limit=5)  # vs the whole split
    ds = load_dataset("head_qa", data_dir=data, cache_dir=tmp_path / "c", on_overlap="drop", eval_limit=5)
    assert ds.contamination["compared_with"] == "whole test split" and ds.contamination["dropped"] == 1
    assert ds.contamination["total"] == 1 and len(ds.reference_questions) == 60
    assert len(set(ds.train_ids)) == len(ds.train_ids) == len(ds.train)  # official files carry no ids:
    assert all(i.startswith("train:content-") for i in ds.train_ids)     # named by their content


def test_cross_fitted_pool_is_checked_against_the_held_out_fold(tmp_path: Path) -> None:
    from tests.conftest import FIXTURE_DATA

    ds = load_dataset("medbullets", data_dir=FIXTURE_DATA, cache_dir=tmp_path, fold=0)
    assert ds.contamination["compared_with"] == "held-out fold"
    assert ds.contamination["test_questions"] == len(ds.eval_ids) == len(ds.reference_questions)
    assert all(i.startswith("test:") and i.split(":", 1)[1] not in ds.eval_ids for i in ds.train_ids + ds.val_ids)


# ---- real data ------------------------------------------------------------------------------------------


def test_real_head_qa_train_near_duplicates(tmp_path: Path) -> None:
    """HeadQA train questions that are test questions: 0 found before, 17 now (11 with a 5th distractor)."""
    data = shared_data_or_skip()
    from helm_optimizer.scenarios.medical import LocalHeadQAScenario, optimization_instances

    train = [question_of(i, multiple_choice=True) for i in optimization_instances("head_qa", str(data)).train]
    test = [question_of(i, multiple_choice=True)
            for i in LocalHeadQAScenario(data_dir=str(data)).get_instances(str(tmp_path))]
    report = find_duplicates(train, test)
    assert (report.counts["exact"], report.counts["normalized"]) == (0, 0)  # all the old check could see
    assert (report.total, report.counts["stem+answer"], report.counts["stem+options"]) == (17, 16, 1)
    extra_distractor = [m for m in report.matches if m.kind == "stem+answer"
                        and {normalize_text(o) for o in test[m.test].options}
                        < {normalize_text(o) for o in train[m.candidate].options}]
    assert len(extra_distractor) == 11  # same answer, the test's 4 options plus a 5th
    same_stem = [m for m in extra_distractor
                 if normalize_text(train[m.candidate].stem) == normalize_text(test[m.test].stem)]
    assert len(same_stem) == 8  # ... 8 of them with the very same stem, 3 with a small edit


def test_real_medbullets_op4_is_the_test_set() -> None:
    data = shared_data_or_skip()
    from helm_optimizer.scenarios.medical import medbullets_duplicates

    report = medbullets_duplicates(str(data))
    assert (report.candidates, report.total, report.counts["stem+answer"]) == (308, 308, 308)
