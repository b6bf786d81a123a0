"""Per-benchmark adjustments applied on top of HELM's own run specs.

For the four medical benchmarks: read the same files from a local directory when one is given,
and add our corrected metric beside HELM's official one. For MedCalc-Bench the corrected accuracy
is the optimization target, because HELM's scores every ``lab`` and ``dosage`` row 0 whatever the
answer (see ``helm_optimizer.metrics.medcalc``).

A profile names classes by their ``class_name`` string only (as HELM's specs do), so this layer
imports none of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["PROFILES", "ScenarioProfile", "apply_profile", "profile_for"]


@dataclass(frozen=True)
class ScenarioProfile:
    """What we know about one benchmark: HELM's scenario class, our local one, its files and provenance."""

    name: str
    """HELM run spec name, e.g. ``medec``."""
    helm_scenario_class: str
    """Fully qualified name of HELM's scenario class."""
    local_scenario_class: str
    """Fully qualified name of our subclass, for a HELM ``ScenarioSpec`` (adds ``data_dir``)."""
    test_files: tuple[str, ...]
    """Files of the test split, relative to the data directory."""
    license: str
    source: str
    corrected_metric_class: str | None = None
    """Fully qualified name of our corrected HELM metric, where HELM's metric is defective."""
    optimization_metric: str | None = None
    """The metric DSPy optimizes when HELM's main metric is known to be defective."""
    optimization_note: str = ""
    """Why ``optimization_metric`` replaces HELM's main metric (shown to the user)."""
    fold_group: str | None = None
    """A rule of :data:`helm_optimizer.helm.subsets.GROUP_RULES`: instances it groups share a fold."""


PROFILES: dict[str, ScenarioProfile] = {
    "medcalc_bench": ScenarioProfile(
        name="medcalc_bench",
        helm_scenario_class="helm.benchmark.scenarios.medcalc_bench_scenario.MedCalcBenchScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medcalc_bench.LocalMedCalcBenchScenario",
        test_files=("medcalc_bench/test_data.csv",),
        license="CC-BY-SA 4.0",
        source="ncbi-nlp/MedCalc-Bench tag version-1.0 (commit 353ded7c), dataset/test_data.csv; "
        "HF ncbi/MedCalc-Bench split test",
        corrected_metric_class="helm_optimizer.metrics.medcalc.MedCalcBenchCorrectedMetric",
        optimization_metric="medcalc_bench_accuracy_corrected",
        optimization_note="HELM's main metric scores lab and dosage rows 0",
        fold_group="passage",
    ),
    "medec": ScenarioProfile(
        name="medec",
        helm_scenario_class="helm.benchmark.scenarios.medec_scenario.MedecScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medec.LocalMedecScenario",
        test_files=("medec/MEDEC-MS-TestSet-with-GroundTruth-and-ErrorType.csv",),
        license="CC BY 4.0",
        source="abachaa/MEDEC commit 49c59dcb (pinned by HELM), MEDEC-MS/",
        corrected_metric_class="helm_optimizer.metrics.medec.MedecCorrectedMetric",
        optimization_metric="medec_error_flag_accuracy_corrected",
        optimization_note="HELM's error-flag accuracy counts an empty or unreadable answer as a flagged error",
    ),
    "head_qa": ScenarioProfile(
        name="head_qa",
        helm_scenario_class="helm.benchmark.scenarios.headqa_scenario.HeadQAScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.head_qa.LocalHeadQAScenario",
        test_files=("head_qa/HEAD_EN/test_HEAD_EN.json",),
        license="MIT (exam content under the Spanish Ministerio de Sanidad terms in HEAD_EN/README.txt)",
        source="authors' HEAD v1.0 English release (HEAD_EN), "
        "copied in claudiaqw/head-qa-afi commit 9a8c0b3b; "
        "HF dvilares/head_qa config en",
    ),
    "medbullets": ScenarioProfile(
        name="medbullets",
        helm_scenario_class="helm.benchmark.scenarios.medbullets_scenario.MedBulletsScenario",
        local_scenario_class="helm_optimizer.scenarios.medical.medbullets.LocalMedBulletsScenario",
        test_files=("medbullets/medbullets_op5.csv",),
        license="none stated (questions from medbullets.com)",
        source="HanjieChen/ChallengeClinicalQA commit ef3c9da0 (HELM follows main), "
        "medbullets/medbullets_op5.csv",
    ),
}


def profile_for(name: str, scenario_class: str | None = None) -> ScenarioProfile | None:
    """The profile of run spec ``name`` when its scenario is HELM's (or our local) class for it."""
    profile = PROFILES.get(name)
    if profile is None:
        return None
    if scenario_class is not None and scenario_class not in (profile.helm_scenario_class,
                                                             profile.local_scenario_class):
        return None
    return profile


def apply_profile(name: str, run_spec: Any, data_dir: str | None
                  ) -> tuple[Any, ScenarioProfile | None, str | None, list[str]]:
    """Return ``(run_spec, profile or None, optimization metric override, notes)``."""
    from helm.benchmark.metrics.metric import MetricSpec

    profile = profile_for(name, run_spec.scenario_spec.class_name)
    if profile is None:
        return run_spec, None, None, []
    notes: list[str] = []
    if data_dir:
        spec = dataclasses.replace(
            run_spec.scenario_spec,
            class_name=profile.local_scenario_class,
            args={**run_spec.scenario_spec.args, "data_dir": str(data_dir)},
        )
        run_spec = dataclasses.replace(run_spec, scenario_spec=spec)
        notes.append(f"{name}: reading the benchmark files from {data_dir} (same files HELM downloads)")
    if profile.corrected_metric_class:
        names = {m.class_name for m in run_spec.metric_specs}
        if profile.corrected_metric_class not in names:
            run_spec = dataclasses.replace(
                run_spec, metric_specs=[*run_spec.metric_specs, MetricSpec(class_name=profile.corrected_metric_class)]
            )
    override = profile.optimization_metric
    if override:
        notes.append(f"{name}: optimizing {override} ({profile.optimization_note})")
    return run_spec, profile, override, notes
