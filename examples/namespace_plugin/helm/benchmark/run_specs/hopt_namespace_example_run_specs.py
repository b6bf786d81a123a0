"""Loading method 3 (the ``helm.benchmark.run_specs`` namespace): a run spec found by its location.

This file lives at ``helm/benchmark/run_specs/`` under ``examples/namespace_plugin``. HELM imports
every module of its ``helm.benchmark.run_specs`` package when it looks a run spec up. With
``PYTHONPATH=examples/namespace_plugin``:

* HELM 0.5.16 alone does NOT find this file: ``helm.benchmark.run_specs`` is a regular package
  (it has an ``__init__.py``), so Python never merges a second directory of that name into it;
* with helm-optimizer installed it IS found: helm-optimizer's ``helm`` entry point adds every
  ``helm/benchmark/run_specs`` directory on ``sys.path`` to the package's ``__path__``.

Do not add ``__init__.py`` files to this tree: ``helm/__init__.py`` here would shadow HELM itself.
The scenario class is defined here too, and named by its module path in the namespace.
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

QUESTIONS = [("2+2=?", "4", TRAIN_SPLIT), ("3+4=?", "7", TRAIN_SPLIT), ("5+6=?", "11", TEST_SPLIT),
             ("8+8=?", "16", TEST_SPLIT)]


class NamespaceArithScenario(Scenario):
    name = "namespace_arith"
    description = "Four arithmetic questions (the namespace plugin example)."
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


@run_spec_function("hopt_namespace_example")
def hopt_namespace_example_run_spec() -> RunSpec:
    return RunSpec(
        name="hopt_namespace_example",
        scenario_spec=ScenarioSpec(class_name=f"{__name__}.NamespaceArithScenario"),
        adapter_spec=get_generation_adapter_spec(
            instructions="Answer with a number only.", output_noun="Answer", max_train_instances=0, max_tokens=10,
        ),
        metric_specs=get_exact_match_metric_specs(),
        groups=["namespace_arith"],
    )
