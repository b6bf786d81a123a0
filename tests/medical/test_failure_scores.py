"""No built-in main metric rewards failure: an always-empty and an always-garbage answerer score 0.

Each benchmark's main metric (the one optimized and reported) is computed by the task's own HELM
metric classes on every test instance, answered with ``""`` and with text that is no answer.
HELM's official MEDEC flag accuracy is the exception the corrected metric exists for: it scores
the always-empty answerer 311/597 on the real test set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from helm_optimizer.helm.task import HelmTask, build_task
from helm_optimizer.metrics.helm_metric import HelmScorer

from .conftest import FIXTURE_DIR

BENCHMARKS = ("medcalc_bench", "medec", "head_qa", "medbullets")
FAILURES = {"empty": "", "garbage": "Lorem ipsum, dolor sit amet."}
# Real-data cap per benchmark (MEDEC is scored in full: its HELM figure is the point of the test).
CAP = {"medcalc_bench": 300, "head_qa": 300, "medbullets": 308, "medec": 597}


def _scores(task: HelmTask, answer: str, metric: str, cache: Path, cap: int) -> tuple[float, int]:
    scorer = HelmScorer(dataclasses.replace(task, main_metric=metric), {})
    instances = [i for i in task.load_instances(cache) if i.split == task.main_split][:cap]
    total = 0.0
    for instance in instances:
        prompted = task.prompt(instance)
        assert prompted is not None
        total += scorer.score_state(prompted.request_state, answer)
    return total, len(instances)


@pytest.mark.parametrize("name", BENCHMARKS)
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failure_scores_zero_on_fixtures(name: str, failure: str, tmp_path: Path) -> None:
    task = build_task(name, data_dir=FIXTURE_DIR)
    total, n = _scores(task, FAILURES[failure], task.main_metric, tmp_path, 10**6)
    assert n > 0 and total == 0.0, f"{name}: {task.main_metric} gives {total}/{n} to an always-{failure} answerer"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_failure_scores_zero_on_real_data(name: str, real_data_dir: Path, tmp_path: Path) -> None:
    task = build_task(name, data_dir=real_data_dir)
    for failure, answer in FAILURES.items():
        total, n = _scores(task, answer, task.main_metric, tmp_path, CAP[name])
        assert n > 0 and total == 0.0, f"{name}: {task.main_metric} gives {total}/{n} to an always-{failure} answerer"


def test_helm_medec_flag_accuracy_rewards_failure(real_data_dir: Path, tmp_path: Path) -> None:
    """The defect: HELM's official flag accuracy gives an always-empty answerer every note with an error."""
    task = build_task("medec", data_dir=real_data_dir)
    assert task.main_metric == "medec_error_flag_accuracy_corrected"
    total, n = _scores(task, "", "medec_error_flag_accuracy", tmp_path, CAP["medec"])
    assert (total, n) == (311, 597)
