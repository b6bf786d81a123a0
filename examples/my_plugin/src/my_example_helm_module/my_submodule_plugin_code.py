"""A tiny HELM plugin: 5 train + 2 test arithmetic instances, a metric and a run spec.

Equivalent to the example in HELM's guide to custom modules. ``main_metric`` names a stat the
metric really produces (``exact_match``), so tools that read it can score predictions.
"""

from __future__ import annotations

from helm.benchmark.adaptation.adapter_spec import AdapterSpec
from helm.benchmark.adaptation.request_state import RequestState
from helm.benchmark.metrics.evaluate_reference_metrics import compute_reference_metrics
from helm.benchmark.metrics.metric import Metric, MetricSpec
from helm.benchmark.metrics.metric_service import MetricService
from helm.benchmark.metrics.statistic import Stat
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import (
    CORRECT_TAG,
    TEST_SPLIT,
    TRAIN_SPLIT,
    Input,
    Instance,
    Output,
    Reference,
    Scenario,
    ScenarioMetadata,
    ScenarioSpec,
)

EXAMPLES = [
    ("1+1=?", "2", TRAIN_SPLIT),
    ("2+2=?", "4", TRAIN_SPLIT),
    ("3+3=?", "6", TRAIN_SPLIT),
    ("4+4=?", "8", TRAIN_SPLIT),
    ("5+5=?", "10", TRAIN_SPLIT),
    ("6+6=?", "12", TEST_SPLIT),
    ("7+7=?", "14", TEST_SPLIT),
]


class CustomScenario(Scenario):
    name = "custom_scenario"
    description = "A tiny scenario used for testing."
    tags = ["custom"]  # noqa: RUF012  (HELM declares tags as a plain class attribute)

    def get_instances(self, output_path: str) -> list[Instance]:
        instances = []
        counters = {TRAIN_SPLIT: 0, TEST_SPLIT: 0}
        for question, answer, split in EXAMPLES:
            counters[split] += 1
            instances.append(
                Instance(
                    id=f"{split}-{counters[split]:03d}",
                    input=Input(text=f"Q: {question}\nA:"),
                    references=[Reference(output=Output(text=answer), tags=[CORRECT_TAG])],
                    split=split,
                )
            )
        return instances

    def get_metadata(self) -> ScenarioMetadata:
        return ScenarioMetadata(name=self.name, main_metric="exact_match", main_split="test")


class CustomMetric(Metric):
    """Exact match through HELM's reference-metric helper."""

    def __init__(self, names: list[str] | None = None):
        self.names = names or ["exact_match"]

    def evaluate_generation(
        self,
        adapter_spec: AdapterSpec,
        request_state: RequestState,
        metric_service: MetricService,
        eval_cache_path: str,
    ) -> list[Stat]:
        return compute_reference_metrics(
            names=self.names,
            adapter_spec=adapter_spec,
            request_state=request_state,
            metric_service=metric_service,
        )


@run_spec_function("my_custom_run_spec")
def build_custom_run_spec() -> RunSpec:
    return RunSpec(
        name="my_custom_run_spec",
        scenario_spec=ScenarioSpec(class_name="my_example_helm_module.my_submodule_plugin_code.CustomScenario"),
        adapter_spec=AdapterSpec(method="generation"),
        metric_specs=[MetricSpec(class_name="my_example_helm_module.my_submodule_plugin_code.CustomMetric")],
    )
