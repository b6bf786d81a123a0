"""Medbullets (USMLE step 2/3 style questions) from local copies of the files HELM downloads."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer.errors import DataError
from helm_optimizer.scenarios.contamination import ContaminationReport, Question, find_duplicates, question_of
from helm_optimizer.scenarios.medical._files import find_data_file, read_csv_records, resolve_data_dir
from helm_optimizer.scenarios.medical._helm import helm_definition_path
from helm_optimizer.scenarios.medical._optimization import OptimizationData
from helm_optimizer.scenarios.overlap import OverlapReport, find_overlap

prepare_offline_environment()

from helm.benchmark.scenarios.medbullets_scenario import MedBulletsScenario  # noqa: E402
from helm.benchmark.scenarios.scenario import TEST_SPLIT, Instance  # noqa: E402

__all__ = [
    "MEDBULLETS_OP4_FILE",
    "MEDBULLETS_TEST_FILE",
    "LocalMedBulletsScenario",
    "answer_distribution",
    "medbullets_duplicates",
    "medbullets_optimization_data",
    "medbullets_overlap",
]

logger = logging.getLogger(__name__)

BENCHMARK = "medbullets"
MEDBULLETS_TEST_FILE = "medbullets_op5.csv"
MEDBULLETS_OP4_FILE = "medbullets_op4.csv"
_REQUIRED = ("question", "opa", "opb", "opc", "opd", "ope", "answer_idx")

NO_SPLIT_NOTE = (
    "Medbullets has no official non-test split: medbullets_op4.csv holds the same 308 questions as the "
    "op5 test file reduced to 4 options, so training on it leaks the test set. Cross-fit on the test split."
)


class LocalMedBulletsScenario(MedBulletsScenario):  # type: ignore[misc]
    """HELM's ``MedBulletsScenario``, reading ``medbullets_op5.csv`` from ``data_dir`` when one is given.

    Instances are made by HELM's own ``process_csv`` (five references A-E, the ``answer_idx`` one
    tagged correct), so they are identical to HELM's.
    """

    def __init__(self, data_dir: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.data_dir = data_dir
        self.definition_path = helm_definition_path(MedBulletsScenario)

    def get_instances(self, output_path: str) -> list[Instance]:
        directory = resolve_data_dir(self.data_dir)
        if directory is None:
            instances: list[Instance] = super().get_instances(output_path)
            return instances
        path = find_data_file(directory, BENCHMARK, MEDBULLETS_TEST_FILE)
        read_csv_records(path, _REQUIRED)  # empty, non-UTF-8 and missing columns fail here
        instances = self.process_csv(str(path), TEST_SPLIT)
        if not instances:
            raise DataError(f"Data file {path} has no valid question rows; use the original file.")
        return instances


def medbullets_optimization_data(data_dir: str | None = None) -> OptimizationData:
    """Always empty: Medbullets has no split beside the test set (see :data:`NO_SPLIT_NOTE`)."""
    del data_dir  # accepted for a uniform signature; there is nothing to read
    return OptimizationData(train=[], valid=[], sources=[], note=NO_SPLIT_NOTE)


def medbullets_overlap(data_dir: str | None = None) -> OverlapReport:
    """How many op4 questions (the reference tool's training file) appear in the op5 test file."""
    directory = resolve_data_dir(data_dir)
    if directory is None:
        raise DataError(
            "medbullets_overlap needs the local files medbullets_op4.csv and medbullets_op5.csv; "
            "pass --data-dir (or set $HELM_OPTIMIZER_DATA_DIR)."
        )
    op4 = _questions(find_data_file(directory, BENCHMARK, MEDBULLETS_OP4_FILE))
    op5 = _questions(find_data_file(directory, BENCHMARK, MEDBULLETS_TEST_FILE))
    return find_overlap(op4, op5)


def medbullets_duplicates(data_dir: str | None = None) -> ContaminationReport:
    """op4 questions (stem, 4 options, answer) that are test questions (op5 instances as HELM builds them).

    The files hold the same 308 questions with 4 and 5 options: an exact or normalized comparison of
    stem and options finds none of them; the question-level check finds all.
    """
    directory = resolve_data_dir(data_dir)
    if directory is None:
        raise DataError("medbullets_duplicates needs the local files medbullets_op4.csv and medbullets_op5.csv; "
                        "pass --data-dir (or set $HELM_OPTIMIZER_DATA_DIR).")
    rows = read_csv_records(find_data_file(directory, BENCHMARK, MEDBULLETS_OP4_FILE),
                            ("question", "opa", "opb", "opc", "opd", "answer_idx"))
    op4 = []
    for row in rows:
        options = tuple(row[f"op{letter}"] for letter in "abcd")
        answer = row.get(f"op{row['answer_idx'].strip().lower()}", "")
        op4.append(Question(stem=row["question"], options=options, answers=(answer,) if answer else ()))
    test = LocalMedBulletsScenario(data_dir=str(directory)).get_instances(str(directory))
    return find_duplicates(op4, [question_of(i, multiple_choice=True) for i in test])


def _questions(path: Path) -> list[str]:
    return [row["question"] for row in read_csv_records(path, ("question",)) if row.get("question")]


def answer_distribution(instances: list[Instance]) -> dict[str, int]:
    """Count of the correct letter (A-E) over Medbullets instances."""
    letters = MedBulletsScenario.POSSIBLE_ANSWER_CHOICES
    counts: Counter[str] = Counter()
    for instance in instances:
        for letter, reference in zip(letters, instance.references, strict=False):
            if reference.is_correct:
                counts[letter] += 1
    return dict(sorted(counts.items()))
