"""``number_match``: 1 when the first whole number in the answer is the correct reference's number."""

from __future__ import annotations

import re

from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.adaptation.request_state import RequestState
from helm.benchmark.metrics.metric import Metric
from helm.benchmark.metrics.metric_name import MetricName
from helm.benchmark.metrics.metric_service import MetricService
from helm.benchmark.metrics.statistic import Stat

_NUMBER = re.compile(r"-?\d+")


def first_number(text: str) -> int | None:
    """The first whole number in ``text`` ("The product is 56." -> 56), or None."""
    found = _NUMBER.search(text.replace(",", ""))
    return int(found.group()) if found else None


class NumberMatchMetric(Metric):
    """Reads the number out of a free-form answer, so "56", " 56." and "It is 56" all count."""

    def evaluate_generation(self, adapter_spec: AdapterSpec, request_state: RequestState,
                            metric_service: MetricService, eval_cache_path: str) -> list[Stat]:
        completions = request_state.result.completions if request_state.result else []
        answer = first_number(completions[0].text) if completions else None
        gold = [first_number(ref.output.text) for ref in request_state.instance.all_correct_references]
        return [Stat(MetricName("number_match")).add(float(answer is not None and answer in gold))]
