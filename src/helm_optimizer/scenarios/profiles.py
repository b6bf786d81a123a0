"""Per-benchmark adjustments applied on top of HELM's own run specs.

For the four medical benchmarks: read the same files from a local directory when one is given,
and add our corrected metric beside HELM's official one. For MedCalc-Bench the corrected accuracy
is the optimization target, because HELM's scores every ``lab`` and ``dosage`` row 0 whatever the
answer (see ``helm_optimizer.metrics.medcalc``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["OPTIMIZATION_METRIC_OVERRIDES", "apply_profile", "medical_benchmark"]

# The metric DSPy optimizes when HELM's main metric is known to be defective.
OPTIMIZATION_METRIC_OVERRIDES = {"medcalc_bench": "medcalc_bench_accuracy_corrected"}


def medical_benchmark(name: str, scenario_class: str | None = None) -> Any | None:
    from helm_optimizer.scenarios.medical import MEDICAL_BENCHMARKS

    bench = MEDICAL_BENCHMARKS.get(name)
    if bench is None:
        return None
    if scenario_class is not None and scenario_class not in (bench.helm_scenario_class, bench.local_scenario_class):
        return None
    return bench


def apply_profile(name: str, run_spec: Any, data_dir: str | None) -> tuple[Any, Any | None, str | None, list[str]]:
    """Return ``(run_spec, medical benchmark or None, optimization metric override, notes)``."""
    from helm.benchmark.metrics.metric import MetricSpec

    bench = medical_benchmark(name, run_spec.scenario_spec.class_name)
    if bench is None:
        return run_spec, None, None, []
    notes: list[str] = []
    if data_dir:
        spec = dataclasses.replace(
            run_spec.scenario_spec,
            class_name=bench.local_scenario_class,
            args={**run_spec.scenario_spec.args, "data_dir": str(data_dir)},
        )
        run_spec = dataclasses.replace(run_spec, scenario_spec=spec)
        notes.append(f"{name}: reading the benchmark files from {data_dir} (same files HELM downloads)")
    if bench.corrected_metric_class:
        names = {m.class_name for m in run_spec.metric_specs}
        if bench.corrected_metric_class not in names:
            run_spec = dataclasses.replace(
                run_spec, metric_specs=[*run_spec.metric_specs, MetricSpec(class_name=bench.corrected_metric_class)]
            )
    override = OPTIMIZATION_METRIC_OVERRIDES.get(name)
    if override:
        notes.append(f"{name}: optimizing {override} (HELM's main metric scores lab and dosage rows 0)")
    return run_spec, bench, override, notes
