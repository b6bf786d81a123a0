"""Holm adjustment, cluster and two-level bootstraps, rank stability, format failures and extraction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helm_optimizer.report.format import extract_letter, format_stats, helm_letter
from helm_optimizer.report.outputs import read_outputs
from helm_optimizer.report.ranks import STABLE, mark_flips, order_probability, rank_stability
from helm_optimizer.report.seeds import seed_summary, two_level_bootstrap
from helm_optimizer.report.stats import (
    RankingFlip,
    bootstrap_mean_ci,
    cluster_bootstrap_mean_ci,
    cluster_index,
    compare_clustered,
    compare_paired,
    holm_adjust,
)

# ---- Holm ---------------------------------------------------------------------------------------------


def test_holm_by_its_definition() -> None:
    p = [0.01, 0.04, None, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.06, 0.04*1)=0.06
    assert holm_adjust(p) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])  # type: ignore[arg-type]
    assert holm_adjust([0.9, 0.8]) == [1.0, 1.0]  # 2 * 0.8 capped at 1
    assert holm_adjust([0.3, 0.1]) == pytest.approx([0.3, 0.2])
    assert holm_adjust([]) == [] and holm_adjust([None]) == [None]


def test_holm_turns_a_lone_unadjusted_significance_off() -> None:
    adjusted = holm_adjust([0.03] + [0.5] * 9)
    assert adjusted[0] == pytest.approx(0.3) and all(a is not None and a >= 0.5 for a in adjusted[1:])


# ---- cluster bootstrap --------------------------------------------------------------------------------


def _width(low: float, high: float) -> float:
    return high - low


def test_cluster_bootstrap_is_not_fooled_by_duplicates() -> None:
    """Every instance twice: the plain bootstrap narrows by about sqrt(2); resampling pairs does not."""
    rng = np.random.default_rng(7)
    x = (rng.random(300) < 0.6).astype(float)
    doubled = np.repeat(x, 2)
    clusters = np.repeat(np.arange(300), 2)
    plain = bootstrap_mean_ci(x, seed=1, resamples=4000)
    naive = bootstrap_mean_ci(doubled, seed=1, resamples=4000)
    grouped = cluster_bootstrap_mean_ci(doubled, clusters, seed=1, resamples=4000)
    assert _width(naive.ci_low, naive.ci_high) == pytest.approx(_width(plain.ci_low, plain.ci_high) / 2**0.5,
                                                                 rel=0.15)
    assert _width(grouped.ci_low, grouped.ci_high) == pytest.approx(_width(plain.ci_low, plain.ci_high), rel=0.15)
    assert grouped.mean == pytest.approx(x.mean())


def test_clustered_comparison_agrees_with_its_interval() -> None:
    rng = np.random.default_rng(3)
    ids = [f"i{k}" for k in range(200)]
    base = {i: float(rng.random() < 0.5) for i in ids}
    better = {i: 1.0 if rng.random() < 0.3 else v for i, v in base.items()}
    groups = {i: k // 2 for k, i in enumerate(ids)}
    result = compare_clustered(better, base, groups, seed=0, resamples=2000)
    assert result.test == "cluster-bootstrap" and result.n == 200
    assert (result.p_value < 0.05) == (result.ci_low > 0 or result.ci_high < 0)
    singles = compare_clustered(better, base, {}, seed=0, resamples=2000)
    assert singles.delta == pytest.approx(compare_paired(better, base, seed=0).delta)


def test_cluster_index_numbers_groups_by_first_appearance() -> None:
    assert cluster_index(["a", "b", "c", "d"], {"a": "x", "c": "x"}).tolist() == [0, 1, 0, 2]


# ---- optimizer seeds ------------------------------------------------------------------------------------


def test_two_level_interval_includes_seed_variance() -> None:
    rng = np.random.default_rng(11)
    instances = rng.random(400)
    same = np.vstack([instances] * 3)
    spread = np.vstack([instances - 0.2, instances, instances + 0.2])
    calm = two_level_bootstrap(same, seed=0, resamples=3000)
    wide = two_level_bootstrap(spread, seed=0, resamples=3000)
    single = bootstrap_mean_ci(instances, seed=0, resamples=3000)
    assert _width(calm.ci_low, calm.ci_high) == pytest.approx(_width(single.ci_low, single.ci_high), rel=0.15)
    assert _width(wide.ci_low, wide.ci_high) > 4 * _width(calm.ci_low, calm.ci_high)
    assert wide.estimate == pytest.approx(instances.mean()) and wide.seed_sd == pytest.approx(0.2)
    assert wide.seed_means == pytest.approx((instances.mean() - 0.2, instances.mean(), instances.mean() + 0.2))


def test_seed_summary_delta() -> None:
    ids = [f"i{k}" for k in range(50)]
    baseline = dict.fromkeys(ids, 0.0)
    per_seed = {0: dict.fromkeys(ids, 1.0), 1: {i: float(k % 2) for k, i in enumerate(ids)}}
    summary = seed_summary(per_seed, baseline, {}, seed=0, resamples=500)
    assert summary.seeds == (0, 1) and summary.n == 50
    assert summary.delta is not None and summary.delta.estimate == pytest.approx(0.75)
    assert summary.mean.seed_means == (1.0, 0.5)


# ---- rank stability -------------------------------------------------------------------------------------


def test_order_probability() -> None:
    rng = np.random.default_rng(5)
    a = (rng.random((1, 300)) < 0.8).astype(float)
    b = (rng.random((1, 300)) < 0.4).astype(float)
    assert order_probability(a, b, seed=0, resamples=500) > 0.99
    assert order_probability(b, b.copy(), seed=0, resamples=500) == 0.5
    close = (rng.random((1, 300)) < 0.41).astype(float)
    assert 0.05 < order_probability(close, b, seed=0, resamples=500) < 0.95


def test_flips_are_called_only_when_stable() -> None:
    ids = [f"i{k}" for k in range(400)]
    rng = np.random.default_rng(2)

    def scores(rate: float) -> dict[int | None, dict[str, float]]:
        return {None: {i: float(rng.random() < rate) for i in ids}}

    base = {"m1": scores(0.8), "m2": scores(0.3)}
    method = {"m1": scores(0.2), "m2": scores(0.9)}
    noisy = {"m1": scores(0.50), "m2": scores(0.52)}
    pairs = (rank_stability("s", "baseline", base, {}, seed=0, resamples=500)
             + rank_stability("s", "opt", method, {}, seed=0, resamples=500)
             + rank_stability("s", "noisy", noisy, {}, seed=0, resamples=500))
    assert all(p.stable for p in pairs if p.method != "noisy")
    flips = [RankingFlip("s", "opt", "m1", "m2", 0.8, 0.3, 0.2, 0.9),
             RankingFlip("s", "noisy", "m1", "m2", 0.8, 0.3, 0.50, 0.52)]
    marked = mark_flips(flips, pairs)
    assert marked[0].stable is True and marked[0].p_baseline_order is not None
    assert marked[0].p_baseline_order >= STABLE and marked[0].p_method_order is not None
    assert marked[1].stable is False


# ---- format failures and the extracted score --------------------------------------------------------------


MAPPING = {"A": "Aspirin", "B": "Reassurance", "C": "Antacids", "D": "Discharge home"}


@pytest.mark.parametrize(
    ("answer", "strict", "extracted"),
    [("B", "B", "B"), (" B\n", "B", "B"), ("The answer is B.", None, "B"), ("Answer: (C)", None, "C"),
     ("B) Reassurance", None, "B"), ("Reassurance", None, "B"), ("b", None, None), ("", None, None),
     ("Answer: a lot of things", None, None), (None, None, None)],
)
def test_extraction_rule(answer: str | None, strict: str | None, extracted: str | None) -> None:
    assert helm_letter(answer, MAPPING, None) == strict
    assert extract_letter(answer, MAPPING) == extracted


def _scenario_state(path: Path, answers: list[str | None], *, mc: bool = True) -> Path:
    states = []
    for k, answer in enumerate(answers):
        result = ({"success": False, "completions": [], "embedding": [], "cached": False} if answer is None else
                  {"success": True, "completions": [{"text": answer, "logprob": 0.0, "tokens": []}],
                   "embedding": [], "cached": False})
        references = [{"output": {"text": t}, "tags": ["correct"] if t == "Aspirin" else []} for t in MAPPING.values()]
        states.append({"instance": {"input": {"text": f"q{k}"}, "references": references, "split": "test",
                                    "id": f"id{k}"},
                       "train_trial_index": 0, "output_mapping": MAPPING if mc else None, "result": result})
    path.mkdir(parents=True, exist_ok=True)
    (path / "scenario_state.json").write_text(json.dumps(
        {"adapter_spec": {"method": "multiple_choice_joint" if mc else "generation"}, "request_states": states}))
    return path


def test_format_stats_of_a_multiple_choice_run(tmp_path: Path) -> None:
    run = _scenario_state(tmp_path / "run", ["A", "The answer is A", "B", "I am not sure", None])
    outputs = read_outputs(run)
    assert outputs is not None and outputs.multiple_choice
    stats = format_stats(outputs, "head_qa")
    assert (stats.n, stats.failures, stats.failure_rate) == (5, 3, 0.6)  # prose, a refusal, a failed request
    assert stats.extracted_mean == pytest.approx(2 / 5)  # "A" and "The answer is A"
    only = format_stats(outputs, "head_qa", ids={"id0", "id1"})
    assert (only.n, only.failures) == (2, 1)


def test_format_stats_of_generation_runs(tmp_path: Path) -> None:
    medec = read_outputs(_scenario_state(tmp_path / "medec", ["CORRECT", "3 fixed.", "no idea", ""], mc=False))
    assert medec is not None
    stats = format_stats(medec, "medec")
    assert (stats.failures, stats.extracted_mean) == (2, None)
    assert format_stats(medec, "other").failures == 1  # elsewhere only empty answers fail
    assert read_outputs(tmp_path / "missing") is None
