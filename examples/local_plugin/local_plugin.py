"""Loading method 2 (``--plugins`` with a file path): a plugin file that imports a sibling module.

    helm-run --plugins examples/local_plugin/local_plugin.py \
        --run-entries "local_arith:model=openai/gpt-4o-mini" --suite tutorial --max-eval-instances 10

HELM imports this file with ``ubelt.import_module_from_path``, which puts this directory on
``sys.path`` while the file executes, so the top-level ``import arith_data`` below works without
PYTHONPATH. The scenario's ``class_name`` names that sibling module (``arith_data.ArithScenario``);
HELM finds it later because the import left it in ``sys.modules``. A sibling imported only later
(inside the run spec function, for example) is *not* found by ``helm-run``; helm-optimizer's
``run_benchmark(plugins=[path])`` keeps the directory on ``sys.path`` so that works too.
"""

from __future__ import annotations

from arith_data import ArithScenario  # the sibling module (same directory)
from helm.benchmark.adaptation.common_adapter_specs import get_generation_adapter_spec
from helm.benchmark.metrics.common_metric_specs import get_exact_match_metric_specs
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import ScenarioSpec

SCENARIO_CLASS = f"{ArithScenario.__module__}.{ArithScenario.__name__}"  # "arith_data.ArithScenario"


@run_spec_function("local_arith")
def local_arith_run_spec() -> RunSpec:
    return RunSpec(
        name="local_arith",
        scenario_spec=ScenarioSpec(class_name=SCENARIO_CLASS),
        adapter_spec=get_generation_adapter_spec(
            instructions="Answer the arithmetic question with a number only.",
            input_noun=None,
            output_noun="Answer",
            max_train_instances=0,
            max_tokens=10,
        ),
        metric_specs=get_exact_match_metric_specs(),
        groups=["local_arith"],
    )
