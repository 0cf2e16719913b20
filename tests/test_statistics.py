"""Statistics over seeds: the computed Student-t quantiles match the published critical
values, the incomplete beta function its closed forms, and summaries and paired
differences a hand computation from the formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqgan_core.statistics import (
    paired_difference,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_quantile,
    summarize,
)

# Two-sided 95% critical values t_(0.975, df) from the standard tables.
CRITICAL_975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 30: 2.042, 10**6: 1.960}


@pytest.mark.parametrize("df, expected", sorted(CRITICAL_975.items()))
def test_t_quantiles_match_the_tables(df: int, expected: float) -> None:
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)
    assert student_t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-3)


def test_t_quantiles_to_more_digits() -> None:
    assert student_t_quantile(0.975, 1) == pytest.approx(12.7062047, abs=1e-6)  # tan(0.475 pi)
    assert student_t_quantile(0.975, 1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)
    assert student_t_quantile(0.975, 4) == pytest.approx(2.7764451, abs=1e-6)
    assert student_t_quantile(0.995, 9) == pytest.approx(3.2498355, abs=1e-6)  # 99% two-sided
    assert student_t_quantile(0.95, 30) == pytest.approx(1.6972609, abs=1e-6)  # 90% two-sided
    assert student_t_quantile(0.5, 7) == 0.0


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 100.0])
def test_t_cdf_closed_forms_for_one_and_two_degrees_of_freedom(t: float) -> None:
    assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)  # Cauchy
    assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


def test_t_cdf_against_scipy_when_installed() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (0.7, 1, 3, 8.5, 25, 400):
        for t in (-6.0, -1.1, 0.2, 1.96, 3.3):
            assert student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-12)


@pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.5, 0.77, 0.999, 1.0])
def test_incomplete_beta_closed_forms(x: float) -> None:
    assert regularized_incomplete_beta(1, 1, x) == pytest.approx(x, abs=1e-14)
    assert regularized_incomplete_beta(3.5, 1, x) == pytest.approx(x**3.5, abs=1e-14)
    assert regularized_incomplete_beta(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-14)
    # I_x(a, b) = P(Binomial(a + b - 1, x) >= a) for integer a, b
    binomial = sum(math.comb(6, k) * x**k * (1 - x) ** (6 - k) for k in range(3, 7))
    assert regularized_incomplete_beta(3, 4, x) == pytest.approx(binomial, abs=1e-14)
    assert regularized_incomplete_beta(2.2, 7.1, x) == pytest.approx(1 - regularized_incomplete_beta(7.1, 2.2, 1 - x),
                                                                     abs=1e-14)


def test_incomplete_beta_symmetric_midpoint_and_bad_arguments() -> None:
    for a in (0.5, 3.0, 40.0):
        assert regularized_incomplete_beta(a, a, 0.5) == pytest.approx(0.5, abs=1e-12)
    # At df ~ 1e6 the log-gamma terms (~1e7) leave ~1e-9 of their float precision.
    assert regularized_incomplete_beta(5e5, 5e5, 0.5) == pytest.approx(0.5, abs=1e-8)
    for bad in [(0, 1, 0.5), (1, -1, 0.5), (1, 1, 1.5), (1, 1, -0.1)]:
        with pytest.raises(ValueError):
            regularized_incomplete_beta(*bad)
    with pytest.raises(ValueError, match="degrees of freedom"):
        student_t_cdf(1.0, 0)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, 3)


# ------------------------------------------------------------- summaries over seeds
def test_summary_is_the_student_t_interval_by_hand() -> None:
    values = [8.70, 8.75, 8.68, 8.80, 8.72]
    mean = sum(values) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t_(0.975, 4)
    s = summarize(values)
    assert s.n == 5
    assert s.mean == pytest.approx(mean, abs=1e-12)
    assert s.sd == pytest.approx(sd, abs=1e-12)
    assert (s.ci_low, s.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    ninety = summarize(values, confidence=0.90)
    assert ninety.ci_high - ninety.mean == pytest.approx(2.1318468 * sd / math.sqrt(5), abs=1e-9)


def test_one_seed_has_no_interval() -> None:
    s = summarize([9.1])
    assert s.mean == 9.1 and s.n == 1
    assert math.isnan(s.sd) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf"), 2.0], [[1.0, 2.0]]])
def test_summary_refuses_empty_or_non_finite_values(bad: list) -> None:
    with pytest.raises(ValueError):
        summarize(bad)


# ------------------------------------------------------------ paired differences
METHOD = {0: 8.70, 1: 8.75, 2: 8.68, 3: 8.80, 4: 8.72}   # e.g. NLL-oracle of one method, by seed
BASELINE = {0: 9.05, 1: 9.02, 2: 9.10, 3: 9.00, 4: 9.07}  # the MLE baseline on the same seeds


def test_paired_difference_by_hand() -> None:
    diffs = [METHOD[s] - BASELINE[s] for s in range(5)]  # -0.35, -0.27, -0.42, -0.20, -0.35
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)
    result = paired_difference(METHOD, BASELINE, better="lower")
    assert result.n == 5
    assert result.mean_diff == pytest.approx(-0.318, abs=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert result.ci_high < 0
    assert result.verdict == "better"  # lower NLL on every seed, interval below 0
    assert paired_difference(METHOD, BASELINE, better="higher").verdict == "worse"
    assert paired_difference(BASELINE, METHOD, better="lower").verdict == "worse"


def test_pairing_is_by_seed_not_by_order() -> None:
    shuffled = {s: BASELINE[s] for s in (3, 1, 4, 0, 2)}
    assert paired_difference(METHOD, shuffled, better="lower") == paired_difference(METHOD, BASELINE, better="lower")
    in_order = paired_difference([METHOD[s] for s in range(5)], [BASELINE[s] for s in range(5)], better="lower")
    assert in_order == paired_difference(METHOD, BASELINE, better="lower")


def test_pairing_removes_the_shared_seed_effect() -> None:
    """Seeds that shift both runs alike (a hard or easy oracle draw) widen an unpaired
    comparison but cancel in the paired one: here the method is better by 0.05 on every
    seed, although the seed effect (+-1) dwarfs it."""
    seed_effect = np.array([-1.0, 0.4, 1.0, -0.3, 0.6, -0.8])
    baseline = 9.0 + seed_effect
    method = baseline - 0.05 + np.array([0.004, -0.003, 0.001, 0.0, -0.002, 0.002])
    paired = paired_difference(method, baseline, better="lower")
    assert paired.verdict == "better"
    unpaired_overlap = summarize(method).ci_high > summarize(baseline).ci_low
    assert unpaired_overlap


def test_an_interval_that_contains_zero_is_no_difference() -> None:
    method, baseline = [1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5]  # diffs -0.5, 0.5, -0.5, 0.5
    result = paired_difference(method, baseline, better="higher")
    assert result.mean_diff == 0.0 and result.ci_low < 0 < result.ci_high
    assert result.verdict == "no difference"
    single = paired_difference([1.0], [2.0], better="higher")
    assert single.verdict == "no difference" and math.isnan(single.ci_low)
    same = paired_difference([1.0, 2.0], [1.0, 2.0], better="lower")  # zero spread, zero mean
    assert (same.ci_low, same.ci_high, same.verdict) == (0.0, 0.0, "no difference")


def test_unpaired_or_mislabelled_inputs_raise() -> None:
    with pytest.raises(ValueError, match="seed"):
        paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0}, better="lower")
    with pytest.raises(ValueError, match="pair"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0], better="lower")
    with pytest.raises(TypeError):
        paired_difference({0: 1.0}, [1.0], better="lower")
    with pytest.raises(ValueError, match="better"):
        paired_difference([1.0, 2.0], [1.0, 2.5], better="smaller")
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [1.0, 2.5], better="lower", confidence=95)


def test_text_and_nan_are_named_not_parsed_or_misreported() -> None:
    """Before, summarize(["1", "2"]) parsed the strings, and student_t_cdf(nan) blamed the
    incomplete beta's internal x ("x must lie in [0, 1]")."""
    from seqgan_core.statistics import student_t_cdf, summarize

    with pytest.raises(TypeError, match="must be numbers, got text"):
        summarize(["7.1", "7.3"])
    with pytest.raises(ValueError, match="t is NaN"):
        student_t_cdf(float("nan"), 3)
    assert summarize([7.1, 7.3]).n == 2 and summarize(np.array([1, 2, 3])).mean == 2.0
