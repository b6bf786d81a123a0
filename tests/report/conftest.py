"""Synthetic sweep outputs: HELM-like run directories and evaluation records.

Run directories are written with HELM's own classes (``Stat``, ``PerInstanceStats``,
``asdict_without_nones``), so ``per_instance_stats.json`` and ``stats.json`` have HELM's exact format.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helm.benchmark.augmentations.perturbation_description import PerturbationDescription
from helm.benchmark.metrics.metric import PerInstanceStats
from helm.benchmark.metrics.metric_name import MetricName
from helm.benchmark.metrics.statistic import Stat, merge_stat
from helm.common.general import asdict_without_nones

from helm_optimizer.naming import METHOD_ZS_COT, METHOD_ZS_PREDICT

METHODS = ("baseline", METHOD_ZS_COT, "MIPROv2")
MODELS = ("openai/gpt-4o", "meta/llama-3-8b")

Scores = Mapping[str, float | Sequence[float]]


def write_helm_run(run_dir: Path, scores: Scores, *, metric: str, split: str = "test") -> float:
    """Write a HELM run directory; ``scores`` maps instance id -> value (or one value per train trial).

    Returns HELM's aggregate (mean over trials of the per-trial mean over instances), as in
    ``helm.benchmark.metrics.metric.Metric.evaluate``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    per_trial = {iid: list(v) if isinstance(v, Sequence) else [v] for iid, v in scores.items()}
    num_trials = max(len(v) for v in per_trial.values())
    robustness = PerturbationDescription(name="typos", robustness=True)
    per_instance: list[PerInstanceStats] = []
    global_stats: dict[MetricName, Stat] = {}
    for trial in range(num_trials):
        trial_stats: dict[MetricName, Stat] = {}
        for iid, values in per_trial.items():
            value = values[trial] if trial < len(values) else values[0]  # same answer every trial
            stats = [
                Stat(MetricName("num_prompt_tokens", split=split)).add(100 + len(iid)),
                Stat(MetricName(metric, split=split)).add(value),
                Stat(MetricName(metric, split=split, perturbation=robustness)).add(1.0 - value),
            ]
            per_instance.append(PerInstanceStats(iid, None, trial, stats))
            # A perturbed copy of the instance: HELM lists it as its own entry; the report skips it.
            perturbed = [Stat(MetricName(metric, split=split, perturbation=robustness)).add(0.0)]
            per_instance.append(PerInstanceStats(iid, robustness, trial, perturbed))
            for stat in stats:
                merge_stat(trial_stats, stat)
        for stat in trial_stats.values():
            merge_stat(global_stats, stat.take_mean())
    (run_dir / "per_instance_stats.json").write_text(
        json.dumps([asdict_without_nones(p) for p in per_instance], indent=2)
    )
    (run_dir / "stats.json").write_text(
        json.dumps([asdict_without_nones(s) for s in global_stats.values()], indent=2)
    )
    (run_dir / "run_spec.json").write_text(json.dumps({"name": run_dir.name}))
    (run_dir / "scenario_state.json").write_text(json.dumps({"request_states": []}))
    aggregate = global_stats[MetricName(metric, split=split)].mean
    assert aggregate is not None
    return float(aggregate)


def write_record(output_dir: Path, name: str, **fields: Any) -> Path:
    path = output_dir / "evaluations" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields, indent=2))
    return path


def record_fields(
    *,
    scenario: str,
    model: str,
    method: str,
    run_dir: str,
    metric: str,
    mean: float,
    count: int,
    fold: int | None = None,
    num_folds: int = 1,
) -> dict[str, Any]:
    optimized = method not in ("baseline", METHOD_ZS_PREDICT, METHOD_ZS_COT)
    return {
        "scenario": scenario,
        "run_entry": f"{scenario}:language=en",
        "model": model,
        "method": method,
        "fold": fold,
        "num_folds": num_folds,
        "suite": "sweep",
        "run_dir": run_dir,
        "main_metric": metric,
        "split": "test",
        "mean": mean,
        "count": count,
        "lm_calls": count,
        "prompt_tokens": 100 * count,
        "completion_tokens": 5 * count,
        "cost": 0.01 * count,
        "wall_time_s": 1.5,
        "optimization": (
            {
                "lm_calls": 900,
                "prompt_tokens": 1000,
                "completion_tokens": 20,
                "cost": 0.5,
                "wall_time_s": 40.0,
            }
            if optimized
            else None
        ),
    }


@dataclass
class SweepOutput:
    output_dir: Path
    scores: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    """(scenario, model, method) -> instance id -> expected per-instance score (trial mean)."""
    helm_means: dict[tuple[str, str, str], float] = field(default_factory=dict)
    records: dict[tuple[str, str, str, int | None], Path] = field(default_factory=dict)
    run_dirs: dict[tuple[str, str, str, int | None], Path] = field(default_factory=dict)


# Target accuracies for the binary scenario: the MIPROv2 prompt reverses the order of the two models.
_BINARY_RATES = {
    ("openai/gpt-4o", "baseline"): 0.70,
    ("openai/gpt-4o", METHOD_ZS_COT): 0.75,
    ("openai/gpt-4o", "MIPROv2"): 0.55,
    ("meta/llama-3-8b", "baseline"): 0.45,
    ("meta/llama-3-8b", METHOD_ZS_COT): 0.50,
    ("meta/llama-3-8b", "MIPROv2"): 0.80,
}


def build_sweep(output_dir: Path, *, n_binary: int = 40, n_fold: int = 30) -> SweepOutput:
    """2 scenarios x 2 models x 3 methods.

    ``med_qa``: binary exact_match, one fold, ``n_binary`` instances; one run has two train trials.
    ``head_qa``: continuous f1 score, cross-fitted in 2 folds of ``n_fold`` instances each.
    """
    rng = np.random.default_rng(12345)
    out = SweepOutput(output_dir)
    for model in MODELS:
        for method in METHODS:
            # --- med_qa: binary, unfolded
            rate = _BINARY_RATES[(model, method)]
            k = round(rate * n_binary)
            values = [1.0] * k + [0.0] * (n_binary - k)
            order = rng.permutation(n_binary)
            scores: dict[str, float | list[float]] = {f"id{i:04d}": values[j] for i, j in enumerate(order)}
            if (model, method) == ("openai/gpt-4o", METHOD_ZS_COT):
                scores["id0000"] = [1.0, 0.0]  # two train trials -> 0.5 for this instance
            key = ("med_qa", model, method)
            label = f"helm/benchmark_output/runs/sweep/med_qa:model={model.replace('/', '_')},method={method}"
            run_dir = output_dir / label
            mean = write_helm_run(run_dir, scores, metric="exact_match")
            out.scores[key] = {
                iid: float(np.mean(v)) if isinstance(v, list) else float(v) for iid, v in scores.items()
            }
            out.helm_means[key] = mean
            fields = record_fields(
                scenario="med_qa", model=model, method=method, run_dir=label, metric="exact_match",
                mean=mean, count=n_binary,
            )  # fmt: skip
            name = f"med_qa/{model.replace('/', '_')}/{method}"
            out.records[(*key, None)] = write_record(output_dir, name, **fields)
            out.run_dirs[(*key, None)] = run_dir

            # --- head_qa: continuous, 2 folds
            key = ("head_qa", model, method)
            shift = {"baseline": 0.0, METHOD_ZS_COT: 0.05, "MIPROv2": 0.15}[method]
            base = 0.4 if model == "openai/gpt-4o" else 0.3
            merged: dict[str, float] = {}
            total = 0.0
            for fold in (0, 1):
                fold_scores = {
                    f"hq{fold * n_fold + i:04d}": float(np.clip(base + shift + rng.normal(0, 0.2), 0, 1))
                    for i in range(n_fold)
                }
                label = (
                    f"helm/benchmark_output/runs/sweep/head_qa:model={model.replace('/', '_')},"
                    f"method={method},fold={fold}"
                )
                run_dir = output_dir / label
                fold_mean = write_helm_run(run_dir, fold_scores, metric="f1_score")
                total += fold_mean * n_fold
                merged.update(fold_scores)
                fields = record_fields(
                    scenario="head_qa", model=model, method=method, run_dir=label, metric="f1_score",
                    mean=fold_mean, count=n_fold, fold=fold, num_folds=2,
                )  # fmt: skip
                name = f"head_qa/{model.replace('/', '_')}/{method}/fold{fold}"
                out.records[(*key, fold)] = write_record(output_dir, name, **fields)
                out.run_dirs[(*key, fold)] = run_dir
            out.scores[key] = merged
            out.helm_means[key] = total / (2 * n_fold)
    return out


def _moved(sweep: SweepOutput, root: Path) -> SweepOutput:
    def move(path: Path) -> Path:
        return root / path.relative_to(sweep.output_dir)

    return SweepOutput(
        output_dir=root,
        scores=sweep.scores,
        helm_means=sweep.helm_means,
        records={k: move(v) for k, v in sweep.records.items()},
        run_dirs={k: move(v) for k, v in sweep.run_dirs.items()},
    )


@pytest.fixture(scope="session")
def pristine_sweep(tmp_path_factory: pytest.TempPathFactory) -> SweepOutput:
    """Built once per session; never modify it (use ``sweep`` for a private copy)."""
    return build_sweep(tmp_path_factory.mktemp("pristine") / "out")


@pytest.fixture
def sweep(pristine_sweep: SweepOutput, tmp_path: Path) -> SweepOutput:
    """A private copy of the synthetic sweep that a test may modify."""
    root = tmp_path / "out"
    shutil.copytree(pristine_sweep.output_dir, root)
    return _moved(pristine_sweep, root)
