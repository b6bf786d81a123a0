"""Local-file loaders for HELM's MedHELM scenarios medcalc_bench, medec, head_qa and medbullets.

Each ``Local*Scenario`` subclasses HELM's own class and adds ``data_dir``: with it (or with
``$HELM_OPTIMIZER_DATA_DIR``) the test instances are built from local copies of the same files
HELM downloads, identical to HELM's; without it HELM's own loader runs. ``*_optimization_data``
functions return the official non-test splits, never the test split.
"""

from __future__ import annotations

from helm_optimizer.scenarios.medical._files import DATA_DIR_ENV, resolve_data_dir
from helm_optimizer.scenarios.medical._optimization import OptimizationData
from helm_optimizer.scenarios.medical.head_qa import (
    LocalHeadQAScenario,
    head_qa_instances,
    head_qa_optimization_data,
    head_qa_rows,
)
from helm_optimizer.scenarios.medical.medbullets import (
    LocalMedBulletsScenario,
    medbullets_duplicates,
    medbullets_optimization_data,
    medbullets_overlap,
)
from helm_optimizer.scenarios.medical.medcalc_bench import (
    LocalMedCalcBenchScenario,
    medcalc_bench_instances,
    medcalc_bench_optimization_data,
)
from helm_optimizer.scenarios.medical.medec import LocalMedecScenario, medec_optimization_data
from helm_optimizer.scenarios.medical.registry import (
    MEDICAL_BENCHMARKS,
    MedicalBenchmark,
    optimization_instances,
)
from helm_optimizer.scenarios.overlap import OverlapReport, find_overlap, normalize_text

__all__ = [
    "DATA_DIR_ENV",
    "MEDICAL_BENCHMARKS",
    "LocalHeadQAScenario",
    "LocalMedBulletsScenario",
    "LocalMedCalcBenchScenario",
    "LocalMedecScenario",
    "MedicalBenchmark",
    "OptimizationData",
    "OverlapReport",
    "find_overlap",
    "head_qa_instances",
    "head_qa_optimization_data",
    "head_qa_rows",
    "medbullets_duplicates",
    "medbullets_optimization_data",
    "medbullets_overlap",
    "medcalc_bench_instances",
    "medcalc_bench_optimization_data",
    "medec_optimization_data",
    "normalize_text",
    "optimization_instances",
    "resolve_data_dir",
]
