"""The local plugin module of the wrapper script example (a sibling of ``run.py``).

``python examples/wrapper_script/run.py`` puts this directory first on ``sys.path``, so
``plugins=["wrapper_plugin"]`` and the ``class_name`` below resolve with no PYTHONPATH change.
"""

from __future__ import annotations

from helm.benchmark.adaptation.common_adapter_specs import get_generation_adapter_spec
from helm.benchmark.metrics.common_metric_specs import get_exact_match_metric_specs
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

QUESTIONS = [("1+2=?", "3", TRAIN_SPLIT), ("2+5=?", "7", TRAIN_SPLIT), ("3+9=?", "12", TEST_SPLIT),
             ("7*3=?", "21", TEST_SPLIT), ("10-4=?", "6", TEST_SPLIT)]


class WrapperArithScenario(Scenario):
    name = "wrapper_arith"
    description = "Five arithmetic questions (the wrapper script example)."
    tags = ["arithmetic"]  # noqa: RUF012  (HELM's Scenario declares a list)

    def get_instances(self, output_path: str) -> list[Instance]:
        counters = {TRAIN_SPLIT: 0, TEST_SPLIT: 0}
        instances = []
        for question, answer, split in QUESTIONS:
            counters[split] += 1
            instances.append(Instance(
                id=f"{split}-{counters[split]:03d}", input=Input(text=f"Q: {question}"),
                references=[Reference(output=Output(text=answer), tags=[CORRECT_TAG])], split=split,
            ))
        return instances

    def get_metadata(self) -> ScenarioMetadata:
        return ScenarioMetadata(name=self.name, main_metric="exact_match", main_split="test")


@run_spec_function("wrapper_arith")
def wrapper_arith_run_spec() -> RunSpec:
    return RunSpec(
        name="wrapper_arith",
        scenario_spec=ScenarioSpec(class_name="wrapper_plugin.WrapperArithScenario"),
        adapter_spec=get_generation_adapter_spec(
            instructions="Answer with a number only.", output_noun="Answer", max_train_instances=0, max_tokens=10,
        ),
        metric_specs=get_exact_match_metric_specs(),
        groups=["wrapper_arith"],
    )
