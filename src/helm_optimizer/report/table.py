"""The report table: one row per scenario x model x method (pure: no file access).

What the table adds beyond the mean (see docs/usage.md, "Reading the report"):

* ``p_value_adjusted``: Holm's step-down adjustment over every comparison of the report;
  ``significant`` is decided on it (family-wise error rate 0.05).
* where evaluated instances share a group (:class:`ReportDetails.groups`), the interval and the
  test of a row come from one cluster bootstrap (``test = cluster-bootstrap``);
* ``format_failure_rate`` / ``extracted_mean`` (:mod:`helm_optimizer.report.format`), ``decoding``
  and ``mean_completion_tokens`` (what each method decoded under);
* a method with several optimizer seeds gets one row: mean over seeds, per-seed means and spread,
  interval and test from the two-level bootstrap (:mod:`helm_optimizer.report.seeds`);
* ``warnings`` also carries provenance and contamination problems of the evaluated agents.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from helm_optimizer.naming import METHOD_BASELINE, ZERO_SHOT_METHODS
from helm_optimizer.report.columns import (
    ReportDetails,
    clustered,
    decoding_of,
    format_figures,
    provenance_problems,
    usages,
)
from helm_optimizer.report.ranks import PairStability, mark_flips, rank_stability
from helm_optimizer.report.records import MethodResult
from helm_optimizer.report.seeds import SeedSummary, seed_summary
from helm_optimizer.report.stats import (
    DEFAULT_RESAMPLES,
    PairedComparison,
    RankingFlip,
    bootstrap_mean_ci,
    cluster_bootstrap_mean_ci,
    cluster_index,
    compare_clustered,
    compare_paired,
    holm_adjust,
    rank_models,
    ranking_flips,
)

__all__ = [
    "BASELINE",
    "COLUMNS",
    "MEAN_TOLERANCE",
    "SIGNIFICANCE_LEVEL",
    "ModelRanking",
    "ReportDetails",
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
    p_value_adjusted: float | None
    """Holm-adjusted over every comparison of the report; ``significant`` is decided on it."""
    test: str | None
    mcnemar_b: int | None
    mcnemar_c: int | None
    significant: bool | None
    clusters: int | None
    """Number of instance groups resampled when instances share groups (cluster bootstrap), else None."""
    format_failure_rate: float | None
    """Share of answers HELM's metric cannot read (see :mod:`helm_optimizer.report.format`)."""
    extracted_mean: float | None
    """Multiple choice: accuracy after the one extraction rule applied to every method."""
    decoding: dict[str, Any] | None
    """What the method decoded under: source (HELM adapter or DSPy LM config), max_tokens, temperature, stop."""
    mean_completion_tokens: float | None
    num_seeds: int
    """Optimizer seeds behind the row (1 unless a multi-seed sweep)."""
    seeds: tuple[int, ...]
    seed_means: tuple[float, ...]
    seed_sd: float | None
    seed_spread: float | None
    """Largest minus smallest per-seed mean."""
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
        data["seeds"] = list(self.seeds)
        data["seed_means"] = list(self.seed_means)
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
    stability: tuple[PairStability, ...] = ()

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
        problems.extend(f"{p}{where}" for p in provenance_problems(record.provenance))
    if result.num_folds > 1 and len(result.records) < result.num_folds:
        present = ", ".join(str(f) for f in result.folds_present)
        problems.append(f"only fold(s) {present} of {result.num_folds} evaluated")
    return problems


def _helm_mean(result: MethodResult) -> float:
    total = sum(r.count for r in result.records)
    if total == 0:
        return math.fsum(r.mean for r in result.records) / len(result.records)
    return math.fsum(r.mean * r.count for r in result.records) / total


def _baseline_problem(result: MethodResult, baseline: MethodResult | None) -> str | None:
    if baseline is None:
        return "no baseline evaluation to compare with"
    if (baseline.main_metric, baseline.split) != (result.main_metric, result.split):
        return (f"baseline scored {baseline.main_metric}/{baseline.split}, not "
                f"{result.main_metric}/{result.split}; no comparison")
    if not result.scores.keys() & baseline.scores.keys():
        return "no instance ids in common with the baseline; no comparison"
    return None


def _build_row(results: Sequence[MethodResult], baseline: MethodResult | None, details: ReportDetails, *,
               seed: int, resamples: int) -> ReportRow:
    if len(results) > 1 or results[0].optimizer_seed is not None:
        return _seed_row(results, baseline, details, seed=seed, resamples=resamples)
    result = results[0]
    groups = details.groups.get(result.scenario, {})
    clusters = clustered(result.scores, groups)
    mean_seed = _row_seed(seed, result.scenario, result.model, result.method, "mean")
    values = list(result.scores.values())
    if clusters is None:
        ci = bootstrap_mean_ci(values, seed=mean_seed, resamples=resamples)
    else:
        ci = cluster_bootstrap_mean_ci(values, cluster_index(list(result.scores), groups), seed=mean_seed,
                                       resamples=resamples)
    helm_mean = _helm_mean(result)
    problems = _checks(result, ci.mean, helm_mean)
    comparison: PairedComparison | None = None
    if result.method != BASELINE:
        problem = _baseline_problem(result, baseline)
        if problem is not None:
            problems.append(problem)
        else:
            assert baseline is not None
            paired_seed = _row_seed(seed, result.scenario, result.model, result.method, "paired")
            if clusters is None and clustered(baseline.scores, groups) is None:
                comparison = compare_paired(result.scores, baseline.scores, seed=paired_seed, resamples=resamples)
            else:
                comparison = compare_clustered(result.scores, baseline.scores, groups, seed=paired_seed,
                                               resamples=resamples)
            if comparison.n != len(result.scores) or comparison.n != len(baseline.scores):
                problems.append(
                    f"compared on {comparison.n} common instances "
                    f"({len(result.scores)} here, {len(baseline.scores)} in the baseline)"
                )
    return _assemble(results, problems, n=ci.n, mean=ci.mean, ci=(ci.ci_low, ci.ci_high), helm_mean=helm_mean,
                     matches=_close(ci.mean, helm_mean), comparison=comparison, clusters=clusters, details=details)


def _seed_row(results: Sequence[MethodResult], baseline: MethodResult | None, details: ReportDetails, *,
              seed: int, resamples: int) -> ReportRow:
    """One row for the optimizer seeds of a method: two-level bootstrap over seeds and instances."""
    first = results[0]
    groups = details.groups.get(first.scenario, {})
    problems: list[str] = []
    helm_means = []
    matches = True
    for result in results:
        helm = _helm_mean(result)
        helm_means.append(helm)
        per_seed_mean = math.fsum(result.scores.values()) / len(result.scores)
        matches = matches and _close(per_seed_mean, helm)
        problems.extend(f"seed {result.optimizer_seed}: {p}" for p in _checks(result, per_seed_mean, helm))
    problem = _baseline_problem(first, baseline)
    if problem is not None and first.method != BASELINE:
        problems.append(problem)
    per_seed = {-1 if r.optimizer_seed is None else r.optimizer_seed: r.scores for r in results}
    summary: SeedSummary = seed_summary(per_seed, baseline.scores if baseline is not None and problem is None
                                        else None, groups,
                                        seed=_row_seed(seed, first.scenario, first.model, first.method, "seeds"),
                                        resamples=resamples)
    if any(len(r.scores) != summary.n for r in results):
        problems.append(f"seeds scored on different instances; {summary.n} common ones used")
    comparison = None
    if summary.delta is not None:
        d = summary.delta
        comparison = PairedComparison(n=len(set(per_seed[summary.seeds[0]]) & set(baseline.scores if baseline
                                                                                  else {})),
                                      delta=d.estimate, ci_low=d.ci_low, ci_high=d.ci_high, p_value=d.p_value,
                                      test="two-level-bootstrap", b=None, c=None)
    helm_mean = math.fsum(helm_means) / len(helm_means)
    row = _assemble(results, problems, n=summary.n, mean=summary.mean.estimate,
                    ci=(summary.mean.ci_low, summary.mean.ci_high), helm_mean=helm_mean,
                    matches=matches,
                    comparison=comparison, clusters=clustered(per_seed[summary.seeds[0]], groups), details=details)
    means = summary.mean.seed_means
    return replace(row, num_seeds=len(results), seeds=tuple(s for s in summary.seeds), seed_means=means,
                   seed_sd=summary.mean.seed_sd, seed_spread=max(means) - min(means))


def _assemble(results: Sequence[MethodResult], problems: list[str], *, n: int, mean: float,
              ci: tuple[float, float], helm_mean: float, matches: bool, comparison: PairedComparison | None,
              clusters: int | None, details: ReportDetails) -> ReportRow:
    first = results[0]
    for problem in problems:
        logger.warning("%s / %s / %s: %s", first.scenario, first.model, first.method, problem)
    evaluation, optimization = usages(results)
    failure_rate, extracted = format_figures(details, results)
    decoding, tokens = decoding_of(results)
    return ReportRow(
        scenario=first.scenario,
        model=first.model,
        method=first.method,
        main_metric=first.main_metric,
        split=first.split,
        num_folds=first.num_folds,
        n=n,
        mean=mean,
        ci_low=ci[0],
        ci_high=ci[1],
        helm_mean=helm_mean,
        mean_matches_helm=matches,
        n_paired=None if comparison is None else comparison.n,
        delta=None if comparison is None else comparison.delta,
        delta_ci_low=None if comparison is None else comparison.ci_low,
        delta_ci_high=None if comparison is None else comparison.ci_high,
        p_value=None if comparison is None else comparison.p_value,
        p_value_adjusted=None,  # set over the whole report by build_table
        test=None if comparison is None else comparison.test,
        mcnemar_b=None if comparison is None else comparison.b,
        mcnemar_c=None if comparison is None else comparison.c,
        significant=None,
        clusters=clusters,
        format_failure_rate=failure_rate,
        extracted_mean=extracted,
        decoding=decoding,
        mean_completion_tokens=tokens,
        num_seeds=1,
        seeds=(),
        seed_means=(),
        seed_sd=None,
        seed_spread=None,
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
        run_dirs=tuple(r.run_dir_label for result in results for r in result.records),
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


def _stability(results: Sequence[MethodResult], details: ReportDetails, *, seed: int,
               resamples: int) -> list[PairStability]:
    by: dict[tuple[str, str], dict[str, dict[int | None, Mapping[str, float]]]] = defaultdict(
        lambda: defaultdict(dict))
    for result in results:
        by[(result.scenario, result.method)][result.model][result.optimizer_seed] = result.scores
    out: list[PairStability] = []
    for (scenario, method), by_model in sorted(by.items(), key=lambda kv: (kv[0][0], method_sort_key(kv[0][1]))):
        if len(by_model) > 1:
            out.extend(rank_stability(scenario, method, by_model, details.groups.get(scenario, {}),
                                      seed=_row_seed(seed, scenario, method, "ranks"), resamples=resamples))
    return out


def build_table(
    results: Sequence[MethodResult], *, seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
    details: ReportDetails | None = None,
) -> ReportTable:
    """Rows sorted by scenario, model, then method (baseline first), plus rankings and their flips.

    Significance is decided on Holm-adjusted p-values over every comparison in the table.
    """
    info = details or ReportDetails()
    baselines: Mapping[tuple[str, str], MethodResult] = {
        (r.scenario, r.model): r for r in results if r.method == BASELINE and r.optimizer_seed is None
    }
    grouped: dict[tuple[str, str, str], list[MethodResult]] = defaultdict(list)
    for result in results:
        grouped[(result.scenario, result.model, result.method)].append(result)
    keys = sorted(grouped, key=lambda k: (k[0], k[1], method_sort_key(k[2])))
    rows = [_build_row(sorted(grouped[k], key=lambda r: -1 if r.optimizer_seed is None else r.optimizer_seed),
                       baselines.get(k[:2]), info, seed=seed, resamples=resamples) for k in keys]
    adjusted = holm_adjust([r.p_value for r in rows])
    rows = [replace(r, p_value_adjusted=p, significant=None if p is None else p < SIGNIFICANCE_LEVEL)
            for r, p in zip(rows, adjusted, strict=True)]
    rankings, flips = _rankings(rows)
    stability = _stability(results, info, seed=seed, resamples=resamples)
    return ReportTable(
        rows=tuple(rows), rankings=tuple(rankings), flips=tuple(mark_flips(flips, stability)), seed=seed,
        resamples=resamples, stability=tuple(stability),
    )
