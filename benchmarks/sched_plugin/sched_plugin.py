"""HELM plugin of ``benchmarks/sweep_scheduler.py``: ``sched_arith:op=add|mul,train=N,valid=N,test=N``.

Loaded with ``plugins: [benchmarks/sched_plugin/sched_plugin.py]`` (like ``examples/local_plugin``,
the scenario lives in the sibling module ``sched_data``).
"""

from __future__ import annotations

from helm.benchmark.adaptation.common_adapter_specs import get_generation_adapter_spec
from helm.benchmark.metrics.common_metric_specs import get_exact_match_metric_specs
from helm.benchmark.run_spec import RunSpec, run_spec_function
from helm.benchmark.scenarios.scenario import ScenarioSpec
from sched_data import SchedArithScenario

SCENARIO_CLASS = f"{SchedArithScenario.__module__}.{SchedArithScenario.__name__}"


@run_spec_function("sched_arith")
def sched_arith_run_spec(op: str = "add", train: str = "24", valid: str = "24", test: str = "24") -> RunSpec:
    return RunSpec(
        name=f"sched_arith:op={op}",
        scenario_spec=ScenarioSpec(class_name=SCENARIO_CLASS,
                                   args={"op": op, "train": int(train), "valid": int(valid), "test": int(test)}),
        adapter_spec=get_generation_adapter_spec(
            instructions="Answer the arithmetic question with a number only.",
            input_noun=None, output_noun="Answer", max_train_instances=0, max_tokens=10,
        ),
        metric_specs=get_exact_match_metric_specs(),
        groups=["sched_arith"],
    )
