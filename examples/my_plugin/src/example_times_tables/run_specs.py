"""The ``times_tables`` run spec, registered when HELM imports this module (the package's entry point).

    helm-run --run-entries times_tables:model=openai/gpt-4o-mini --suite tutorial --max-eval-instances 10

The scenario and the metric are named by ``class_name``. This module imports their modules too, so
that they are loaded even when HELM imports this file by path (``--plugins .../run_specs.py``) and
takes its directory off ``sys.path`` afterwards.
"""

from __future__ import annotations

from helm.benchmark.adaptation.adapter_spec import ADAPT_GENERATION, AdapterSpec
from helm.benchmark.metrics.metric import MetricSpec
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import ScenarioSpec

from example_times_tables import metric, scenario  # noqa: F401  (loaded before HELM looks the classes up)


@run_spec_function("times_tables")
def times_tables_run_spec() -> RunSpec:
    return RunSpec(
        name="times_tables",
        scenario_spec=ScenarioSpec(class_name="example_times_tables.scenario.TimesTablesScenario"),
        adapter_spec=AdapterSpec(
            method=ADAPT_GENERATION,
            instructions="Multiply the two numbers. Answer with the product only.",
            input_prefix="",
            output_prefix="Product: ",
            max_train_instances=0,  # the training questions are for optimization (and few-shot if raised)
            max_tokens=8,
            stop_sequences=["\n"],
        ),
        metric_specs=[MetricSpec(class_name="example_times_tables.metric.NumberMatchMetric")],
        groups=["times_tables"],
    )
