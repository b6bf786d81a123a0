"""The report table: one row per scenario x model x method (pure: no file access)."""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from helm_optimizer.naming import METHOD_BASELINE, ZERO_SHOT_METHODS
from helm_optimizer.report.records import MethodResult, Usage
from helm_optimizer.report.stats import (
    DEFAULT_RESAMPLES,
    PairedComparison,
    RankingFlip,
    bootstrap_mean_ci,
    compare_paired,
    rank_models,
    ranking_flips,
)

__all__ = [
    "BASELINE",
    "COLUMNS",
    "MEAN_TOLERANCE",
    "SIGNIFICANCE_LEVEL",
    "ModelRanking",
    "ReportRow",
    "ReportTable",
    "build_table",
    "method_sort_key",
]

logger = logging.getLogger(__name__)

BASELINE = METHOD_BASELINE
SIGNIFICANCE_LEVEL = 0.05
MEAN_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ReportRow:
    """One (scenario, model, method). Field order is the column order of every output."""

    scenario: str
    model: str
    method: str
    main_metric: str
    split: str
    num_folds: int
    n: int
    mean: float
    ci_low: float
    ci_high: float
    helm_mean: float
    """HELM's aggregate from the records (instance-weighted over folds)."""
    mean_matches_helm: bool
    n_paired: int | None
    delta: float | None
    delta_ci_low: float | None
    delta_ci_high: float | None
    p_value: float | None
    test: str | None
    mcnemar_b: int | None
    mcnemar_c: int | None
    significant: bool | None
    eval_lm_calls: int
    eval_prompt_tokens: int
    eval_completion_tokens: int
    eval_cost: float | None
    eval_wall_time_s: float
    opt_lm_calls: int | None
    opt_prompt_tokens: int | None
    opt_completion_tokens: int | None
    opt_cost: float | None
    opt_wall_time_s: float | None
    warnings: str
    """Empty when every check passed, else '; '-separated problems (never dropped silently)."""
    run_dirs: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dirs"] = list(self.run_dirs)
        return data


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ReportRow))


@dataclass(frozen=True)
class ModelRanking:
    scenario: str
    method: str
    models: tuple[str, ...]
    """Best first."""
    means: tuple[float, ...]


@dataclass(frozen=True)
class ReportTable:
    rows: tuple[ReportRow, ...]
    rankings: tuple[ModelRanking, ...]
    flips: tuple[RankingFlip, ...]
    seed: int
    resamples: int

    @property
    def scenarios(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.scenario for r in self.rows))

    @property
    def run_dirs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for r in self.rows for d in r.run_dirs))


def method_sort_key(method: str) -> tuple[int, str]:
    """Baseline first, then the zero-shot methods, then optimizers by name."""
    if method == BASELINE:
        return (0, "")
    if method in ZERO_SHOT_METHODS:
        return (1, f"{ZERO_SHOT_METHODS.index(method)}")
    return (2, method)


def _row_seed(seed: int, *parts: str) -> int:
    """A stable per-row seed so rows draw independent, reproducible resamples."""
    return (seed * 1_000_003 + zlib.crc32("\x1f".join(parts).encode("utf-8"))) % 2**63


def _sum_usage(usages: Sequence[Usage | None]) -> Usage | None:
    present = [u for u in usages if u is not None]
    if not present:
        return None
    total = present[0]
    for usage in present[1:]:
        total = total + usage
    return total


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.0, abs_tol=MEAN_TOLERANCE)


def _checks(result: MethodResult, mean: float, helm_mean: float) -> list[str]:
    problems: list[str] = []
    if not _close(mean, helm_mean):
        problems.append(f"per-instance mean {mean:.12g} differs from HELM's aggregate {helm_mean:.12g}")
    for record, size, stats_mean in zip(
        result.records, result.fold_sizes, result.stats_json_means, strict=True
    ):
        where = f" (fold {record.fold})" if record.fold is not None else ""
        if size != record.count:
            problems.append(f"{size} per-instance scores but the record counts {record.count}{where}")
        if stats_mean is not None and not _close(stats_mean, record.mean):
            problems.append(
                f"stats.json mean {stats_mean:.12g} differs from the record's {record.mean:.12g}{where}"
            )
    if result.num_folds > 1 and len(result.records) < result.num_folds:
        present = ", ".join(str(f) for f in result.folds_present)
        problems.append(f"only fold(s) {present} of {result.num_folds} evaluated")
    return problems


def _helm_mean(result: MethodResult) -> float:
    total = sum(r.count for r in result.records)
    if total == 0:
        return math.fsum(r.mean for r in result.records) / len(result.records)
    return math.fsum(r.mean * r.count for r in result.records) / total


def _build_row(
    result: MethodResult, baseline: MethodResult | None, *, seed: int, resamples: int
) -> ReportRow:
    ci = bootstrap_mean_ci(
        list(result.scores.values()),
        seed=_row_seed(seed, result.scenario, result.model, result.method, "mean"),
        resamples=resamples,
    )
    helm_mean = _helm_mean(result)
    problems = _checks(result, ci.mean, helm_mean)
    comparison: PairedComparison | None = None
    if result.method != BASELINE:
        if baseline is None:
            problems.append("no baseline evaluation to compare with")
        elif (baseline.main_metric, baseline.split) != (result.main_metric, result.split):
            problems.append(
                f"baseline scored {baseline.main_metric}/{baseline.split}, not "
                f"{result.main_metric}/{result.split}; no comparison"
            )
        elif not result.scores.keys() & baseline.scores.keys():
            problems.append("no instance ids in common with the baseline; no comparison")
        else:
            comparison = compare_paired(
                result.scores,
                baseline.scores,
                seed=_row_seed(seed, result.scenario, result.model, result.method, "paired"),
                resamples=resamples,
            )
            if comparison.n != len(result.scores) or comparison.n != len(baseline.scores):
                problems.append(
                    f"compared on {comparison.n} common instances "
                    f"({len(result.scores)} here, {len(baseline.scores)} in the baseline)"
                )
    for problem in problems:
        logger.warning("%s / %s / %s: %s", result.scenario, result.model, result.method, problem)
    evaluation = result.records[0].evaluation
    for record in result.records[1:]:
        evaluation = evaluation + record.evaluation
    optimization = _sum_usage([r.optimization for r in result.records])
    return ReportRow(
        scenario=result.scenario,
        model=result.model,
        method=result.method,
        main_metric=result.main_metric,
        split=result.split,
        num_folds=result.num_folds,
        n=ci.n,
        mean=ci.mean,
        ci_low=ci.ci_low,
        ci_high=ci.ci_high,
        helm_mean=helm_mean,
        mean_matches_helm=_close(ci.mean, helm_mean),
        n_paired=None if comparison is None else comparison.n,
        delta=None if comparison is None else comparison.delta,
        delta_ci_low=None if comparison is None else comparison.ci_low,
        delta_ci_high=None if comparison is None else comparison.ci_high,
        p_value=None if comparison is None else comparison.p_value,
        test=None if comparison is None else comparison.test,
        mcnemar_b=None if comparison is None else comparison.b,
        mcnemar_c=None if comparison is None else comparison.c,
        significant=None if comparison is None else comparison.p_value < SIGNIFICANCE_LEVEL,
        eval_lm_calls=evaluation.lm_calls,
        eval_prompt_tokens=evaluation.prompt_tokens,
        eval_completion_tokens=evaluation.completion_tokens,
        eval_cost=evaluation.cost,
        eval_wall_time_s=evaluation.wall_time_s,
        opt_lm_calls=None if optimization is None else optimization.lm_calls,
        opt_prompt_tokens=None if optimization is None else optimization.prompt_tokens,
        opt_completion_tokens=None if optimization is None else optimization.completion_tokens,
        opt_cost=None if optimization is None else optimization.cost,
        opt_wall_time_s=None if optimization is None else optimization.wall_time_s,
        warnings="; ".join(problems),
        run_dirs=tuple(r.run_dir_label for r in result.records),
    )


def _rankings(rows: Sequence[ReportRow]) -> tuple[list[ModelRanking], list[RankingFlip]]:
    means: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        means[row.scenario][row.method][row.model] = row.mean
    rankings: list[ModelRanking] = []
    flips: list[RankingFlip] = []
    for scenario, by_method in means.items():
        for method in sorted(by_method, key=method_sort_key):
            order = rank_models(by_method[method])
            rankings.append(ModelRanking(scenario, method, order, tuple(by_method[method][m] for m in order)))
        found = ranking_flips(scenario, by_method, baseline=BASELINE)
        flips.extend(sorted(found, key=lambda f: (method_sort_key(f.method), f.model_a, f.model_b)))
    return rankings, flips


def build_table(
    results: Sequence[MethodResult], *, seed: int = 0, resamples: int = DEFAULT_RESAMPLES
) -> ReportTable:
    """Rows sorted by scenario, model, then method (baseline first), plus rankings and their flips."""
    baselines: Mapping[tuple[str, str], MethodResult] = {
        (r.scenario, r.model): r for r in results if r.method == BASELINE
    }
    ordered = sorted(results, key=lambda r: (r.scenario, r.model, method_sort_key(r.method)))
    rows = [
        _build_row(r, baselines.get((r.scenario, r.model)), seed=seed, resamples=resamples) for r in ordered
    ]
    rankings, flips = _rankings(rows)
    return ReportTable(
        rows=tuple(rows), rankings=tuple(rankings), flips=tuple(flips), seed=seed, resamples=resamples
    )
