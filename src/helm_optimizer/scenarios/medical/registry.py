"""The four MedHELM benchmarks we load locally, keyed by their HELM run spec name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helm_optimizer.errors import ConfigError, UnknownNameError
from helm_optimizer.helm.profiles import PROFILES, ScenarioProfile
from helm_optimizer.registry import did_you_mean
from helm_optimizer.scenarios.medical._optimization import OptimizationData
from helm_optimizer.scenarios.medical.head_qa import head_qa_optimization_data
from helm_optimizer.scenarios.medical.medbullets import medbullets_optimization_data
from helm_optimizer.scenarios.medical.medcalc_bench import medcalc_bench_optimization_data
from helm_optimizer.scenarios.medical.medec import medec_optimization_data

__all__ = ["MEDICAL_BENCHMARKS", "MedicalBenchmark", "optimization_instances"]


@dataclass(frozen=True)
class MedicalBenchmark:
    """One MedHELM benchmark: its HELM profile and the function that loads its official non-test data."""

    profile: ScenarioProfile
    optimization_data: Callable[..., OptimizationData]
    """``f(data_dir, **scenario_args)`` returning the official non-test instances."""

    @property
    def name(self) -> str:
        return self.profile.name


_LOADERS: dict[str, Callable[..., OptimizationData]] = {
    "medcalc_bench": medcalc_bench_optimization_data,
    "medec": medec_optimization_data,
    "head_qa": head_qa_optimization_data,
    "medbullets": medbullets_optimization_data,
}
MEDICAL_BENCHMARKS: dict[str, MedicalBenchmark] = {
    name: MedicalBenchmark(profile=PROFILES[name], optimization_data=loader) for name, loader in _LOADERS.items()
}


def optimization_instances(
    benchmark: str, data_dir: str | None = None, **scenario_args: Any
) -> OptimizationData:
    """Official non-test instances of ``benchmark`` (a key of :data:`MEDICAL_BENCHMARKS`).

    ``scenario_args`` are the benchmark's HELM scenario arguments that shape the instances
    (``language``/``category`` for head_qa, ``version`` for medcalc_bench); others are an error.
    """
    entry = MEDICAL_BENCHMARKS.get(benchmark)
    if entry is None:
        known = sorted(MEDICAL_BENCHMARKS)
        raise UnknownNameError(
            f"Unknown medical benchmark {benchmark!r}.{did_you_mean(benchmark, known)} "
            f"Known: {', '.join(known)}."
        )
    accepted = [
        name
        for name, parameter in inspect.signature(entry.optimization_data).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unexpected = sorted(set(scenario_args) - set(accepted))
    if unexpected:
        raise ConfigError(
            f"{benchmark} takes no scenario argument(s) {', '.join(unexpected)}; "
            f"it accepts {', '.join(accepted) or 'none'}."
        )
    return entry.optimization_data(data_dir, **scenario_args)
