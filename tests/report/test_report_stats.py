from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from helm_optimizer.errors import DataError
from helm_optimizer.naming import METHOD_ZS_COT
from helm_optimizer.report.stats import (
    bootstrap_mean_ci,
    compare_paired,
    is_binary,
    mcnemar_exact,
    paired_bootstrap,
    rank_models,
    ranking_flips,
)


def test_bootstrap_ci_contains_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    small = rng.binomial(1, 0.6, size=50).astype(float)
    large = rng.binomial(1, 0.6, size=2000).astype(float)
    ci_small = bootstrap_mean_ci(small, seed=1)
    ci_large = bootstrap_mean_ci(large, seed=1)
    for ci, values in ((ci_small, small), (ci_large, large)):
        assert ci.mean == pytest.approx(values.mean(), abs=1e-12)
        assert ci.ci_low <= ci.mean <= ci.ci_high
        assert ci.n == values.size
    assert (ci_large.ci_high - ci_large.ci_low) < (ci_small.ci_high - ci_small.ci_low) / 3


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(3).normal(size=80)
    assert bootstrap_mean_ci(values, seed=7) == bootstrap_mean_ci(values, seed=7)
    assert bootstrap_mean_ci(values, seed=7) != bootstrap_mean_ci(values, seed=8)


def test_bootstrap_ci_of_a_constant_is_a_point() -> None:
    ci = bootstrap_mean_ci([1.0] * 10, seed=0, resamples=50)
    assert (ci.mean, ci.ci_low, ci.ci_high) == (1.0, 1.0, 1.0)


def test_bootstrap_rejects_empty_and_nan() -> None:
    with pytest.raises(DataError):
        bootstrap_mean_ci([], seed=0)
    with pytest.raises(DataError):
        bootstrap_mean_ci([1.0, float("nan")], seed=0)
    with pytest.raises(DataError):
        bootstrap_mean_ci([1.0], seed=0, resamples=0)


def test_paired_bootstrap_is_deterministic_and_detects_a_shift() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.normal(0.5, 0.1, size=200)
    method = baseline + 0.05 + rng.normal(0, 0.02, size=200)
    first = paired_bootstrap(method, baseline, seed=11)
    assert first == paired_bootstrap(method, baseline, seed=11)
    assert first.delta == pytest.approx(float((method - baseline).mean()))
    assert first.ci_low <= first.delta <= first.ci_high
    assert first.ci_low > 0
    assert first.p_value < 0.01
    same = paired_bootstrap(baseline, baseline, seed=11)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def _pairs(b: int, c: int, both: int, neither: int) -> tuple[list[float], list[float]]:
    method = [1.0] * b + [0.0] * c + [1.0] * both + [0.0] * neither
    baseline = [0.0] * b + [1.0] * c + [1.0] * both + [0.0] * neither
    return method, baseline


@pytest.mark.parametrize(("b", "c"), [(3, 12), (12, 3), (0, 7), (5, 5), (1, 0), (40, 61)])
def test_mcnemar_exact_matches_scipy_binomtest(b: int, c: int) -> None:
    method, baseline = _pairs(b, c, both=20, neither=9)
    result = mcnemar_exact(method, baseline)
    assert (result.b, result.c) == (b, c)
    expected = binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12, abs=0)


def test_mcnemar_without_discordant_pairs_has_p_one() -> None:
    method, baseline = _pairs(0, 0, both=5, neither=5)
    assert mcnemar_exact(method, baseline).p_value == 1.0


def test_mcnemar_rejects_non_binary_scores() -> None:
    with pytest.raises(DataError, match="0/1"):
        mcnemar_exact([0.5, 1.0], [0.0, 1.0])


def test_compare_paired_uses_common_ids_and_picks_the_test() -> None:
    method_list, baseline_list = _pairs(3, 12, both=10, neither=5)
    method = {f"i{k}": v for k, v in enumerate(method_list)}
    baseline = {f"i{k}": v for k, v in enumerate(baseline_list)}
    method["only-in-method"] = 1.0
    baseline["only-in-baseline"] = 0.0
    result = compare_paired(method, baseline, seed=0, resamples=300)
    assert result.test == "mcnemar-exact"
    assert (result.n, result.b, result.c) == (30, 3, 12)
    assert result.p_value == pytest.approx(binomtest(3, 15).pvalue)
    assert result.delta == pytest.approx((3 - 12) / 30)

    continuous = {k: v * 0.5 + 0.25 for k, v in method.items()}
    result = compare_paired(continuous, baseline, seed=0, resamples=300)
    assert result.test == "paired-bootstrap"
    assert result.b is None and result.c is None
    assert result == compare_paired(continuous, baseline, seed=0, resamples=300)

    with pytest.raises(DataError, match="share no instance ids"):
        compare_paired({"a": 1.0}, {"b": 1.0}, seed=0)


def test_is_binary() -> None:
    assert is_binary([0.0, 1.0, 1])
    assert not is_binary([0.0, 0.5])


def test_rank_models_breaks_ties_by_name() -> None:
    assert rank_models({"c": 0.5, "a": 0.5, "b": 0.9}) == ("b", "a", "c")


def test_ranking_flips_on_a_constructed_case() -> None:
    means = {
        "baseline": {"A": 0.7, "B": 0.5, "C": 0.3},
        METHOD_ZS_COT: {"A": 0.75, "B": 0.55, "C": 0.35},  # same order: no flip
        "MIPROv2": {"A": 0.6, "B": 0.8, "C": 0.3},  # A/B reverse; B/C and A/C keep order
        "tie": {"A": 0.5, "B": 0.5, "C": 0.1},  # a tie is not a flip
        "partial": {"C": 0.9, "D": 0.1},  # only C is shared with the baseline
    }
    flips = ranking_flips("s", means)
    assert [(f.method, f.model_a, f.model_b) for f in flips] == [("MIPROv2", "A", "B")]
    flip = flips[0]
    assert (flip.baseline_a, flip.baseline_b, flip.method_a, flip.method_b) == (0.7, 0.5, 0.6, 0.8)
    assert ranking_flips("s", {METHOD_ZS_COT: {"A": 1.0}}) == []
