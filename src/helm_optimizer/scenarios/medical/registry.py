"""The four MedHELM benchmarks we load locally, keyed by their HELM run spec name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helm_optimizer.errors import ConfigError, UnknownNameError
from helm_optimizer.registry import did_you_mean
from helm_optimizer.scenarios.medical._optimization import OptimizationData
from helm_optimizer.scenarios.medical.head_qa import head_qa_optimization_data
from helm_optimizer.scenarios.medical.medbullets import medbullets_optimization_data
from helm_optimizer.scenarios.medical.medcalc_bench import medcalc_bench_optimization_data
from helm_optimizer.scenarios.medical.medec import medec_optimization_data

__all__ = ["MEDICAL_BENCHMARKS", "MedicalBenchmark", "optimization_instances"]


@dataclass(frozen=True)
class MedicalBenchmark:
    """What we know about one MedHELM benchmark: HELM's class, ours, its files and its provenance."""

    name: str
    """HELM run spec name, e.g. ``medec``."""
    helm_scenario_class: str
    """Fully qualified name of HELM's scenario class."""
    local_scenario_class: str
    """Fully qualified name of our subclass, for a HELM ``ScenarioSpec`` (adds ``data_dir``)."""
    test_files: tuple[str, ...]
    """Files of the test split, relative to the data directory."""
    optimization_data: Callable[..., OptimizationData]
    """``f(data_dir, **scenario_args)`` returning the official non-test instances."""
    license: str
    source: str
    corrected_metric_class: str | None = None
    """Fully qualified name of our corrected HELM metric, where HELM's metric is defective."""


MEDICAL_BENCHMARKS: dict[str, MedicalBenchmark] = {
    "medcalc_bench": MedicalBenchmark(
        name="medcalc_bench",
        helm_scenario_class="helm.benchmark.scenarios.medcalc_bench_scenario.MedCalcBenchScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medcalc_bench.LocalMedCalcBenchScenario",
        test_files=("medcalc_bench/test_data.csv",),
        optimization_data=medcalc_bench_optimization_data,
        license="CC-BY-SA 4.0",
        source="ncbi-nlp/MedCalc-Bench tag version-1.0 (commit 353ded7c), dataset/test_data.csv; "
        "HF ncbi/MedCalc-Bench split test",
        corrected_metric_class="helm_optimizer.metrics.medcalc.MedCalcBenchCorrectedMetric",
    ),
    "medec": MedicalBenchmark(
        name="medec",
        helm_scenario_class="helm.benchmark.scenarios.medec_scenario.MedecScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medec.LocalMedecScenario",
        test_files=("medec/MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",),
        optimization_data=medec_optimization_data,
        license="CC BY 4.0",
        source="abachaa/MEDEC commit 49c59dcb (pinned by HELM), MEDEC-MS/",
        corrected_metric_class="helm_optimizer.metrics.medec.MedecCorrectedMetric",
    ),
    "head_qa": MedicalBenchmark(
        name="head_qa",
        helm_scenario_class="helm.benchmark.scenarios.headqa_scenario.HeadQAScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.head_qa.LocalHeadQAScenario",
        test_files=("head_qa/HEAD_EN/test_HEAD_EN.json",),
        optimization_data=head_qa_optimization_data,
        license="MIT (exam content under the Spanish Ministerio de Sanidad terms in HEAD_EN/README.txt)",
        source="authors' HEAD v1.0 English release (HEAD_EN), "
        "copied in claudiaqw/head-qa-afi commit 9a8c0b3b; "
        "HF dvilares/head_qa config en",
    ),
    "medbullets": MedicalBenchmark(
        name="medbullets",
        helm_scenario_class="helm.benchmark.scenarios.medbullets_scenario.MedBulletsScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medbullets.LocalMedBulletsScenario",
        test_files=("medbullets/medbullets_op5.csv",),
        optimization_data=medbullets_optimization_data,
        license="none stated (questions from medbullets.com)",
        source="HanjieChen/ChallengeClinicalQA commit ef3c9da0 (HELM follows main), "
        "medbullets/medbullets_op5.csv",
    ),
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
