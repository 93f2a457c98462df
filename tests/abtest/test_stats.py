"""Statistics checked against hand computations, scipy and statsmodels."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, normal_power
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from abtest.stats import inference, multiple, power, sequential, srm
from abtest.stats.comparison import REPORT_KEYS, compare, compare_all
from abtest.stats.sufficient import SufficientStats, stats_by_group

# Five users per bucket, (impressions, clicks), worked by hand below.
A_M, A_C = [10, 5, 20, 2, 8], [1, 0, 3, 1, 0]
B_M, B_C = [4, 6, 10, 3, 7], [1, 2, 1, 0, 1]


def test_sufficient_stats_from_arrays_and_merge():
    a = SufficientStats.from_arrays(A_M, A_C)
    assert a.to_dict() == {"n": 5, "sum_c": 5.0, "sum_m": 45.0, "sum_c2": 11.0, "sum_m2": 593.0,
                           "sum_cm": 10 + 60 + 2.0}
    merged = SufficientStats.from_arrays(A_M[:2], A_C[:2]) + SufficientStats.from_arrays(A_M[2:], A_C[2:])
    assert merged == a
    assert a.var_c == pytest.approx(np.var(A_C, ddof=1), rel=1e-12)
    assert a.var_m == pytest.approx(np.var(A_M, ddof=1), rel=1e-12)
    assert a.cov_cm == pytest.approx(np.cov(A_C, A_M, ddof=1)[0, 1], rel=1e-12)


def test_stats_by_group_matches_per_group_arrays():
    groups = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    m = np.array(A_M + B_M)[[0, 5, 1, 6, 2, 7, 3, 8, 4, 9]]
    c = np.array(A_C + B_C)[[0, 5, 1, 6, 2, 7, 3, 8, 4, 9]]
    got = stats_by_group(groups, m, c, 3)
    assert got[0] == SufficientStats.from_arrays(A_M, A_C)
    assert got[1] == SufficientStats.from_arrays(B_M, B_C)
    assert got[2].n == 0


def test_delta_method_five_user_example_by_hand():
    # A: R = 5/45 = 1/9, m̄ = 9, residuals e = c − m/9 = (−1, −5, 7, 7, −8)/9,
    #    Σe² = 188/81, s²_e = 47/81, Var(R) = s²_e / (n m̄²) = 47/32805.
    # B: R = 5/30 = 1/6, m̄ = 6, e = (1/3, 1, −2/3, −1/2, −1/6), Σe² = 11/6, s²_e = 11/24,
    #    Var(R) = 11/24 / (5·36) = 11/4320.
    a, b = SufficientStats.from_arrays(A_M, A_C), SufficientStats.from_arrays(B_M, B_C)
    assert a.ratio_variance == pytest.approx(47 / 32805, rel=1e-12)
    assert b.ratio_variance == pytest.approx(11 / 4320, rel=1e-12)
    result = inference.delta_method_test(a, b)
    se = math.sqrt(47 / 32805 + 11 / 4320)
    assert result.diff == pytest.approx(1 / 18, rel=1e-12)
    assert result.se == pytest.approx(se, rel=1e-12)
    assert result.p_value == pytest.approx(2 * sps.norm.sf((1 / 18) / se), rel=1e-12)
    # L = (1/6)/(1/9) − 1 = 0.5; Var(L) = V_B·81 + V_A·(1/36)·6561 = 891/4320 + 47/180.
    assert inference.relative_lift(a, b) == pytest.approx(0.5, rel=1e-12)
    var_lift = 891 / 4320 + 47 / 180
    assert inference.lift_se(a, b) == pytest.approx(math.sqrt(var_lift), rel=1e-12)
    low, high = inference.lift_confint(a, b, 0.05, "delta")
    assert (low, high) == pytest.approx((0.5 - 1.959963984540054 * math.sqrt(var_lift),
                                         0.5 + 1.959963984540054 * math.sqrt(var_lift)), rel=1e-9)


def test_log_and_fieller_lift_ci_by_formula():
    a, b = SufficientStats.from_arrays(A_M, A_C), SufficientStats.from_arrays(B_M, B_C)
    z = sps.norm.isf(0.025)
    va, vb, ra, rb = 47 / 32805, 11 / 4320, 1 / 9, 1 / 6
    half = z * math.sqrt(vb / rb**2 + va / ra**2)
    assert inference.lift_confint(a, b, 0.05, "log") == pytest.approx(
        (1.5 * math.exp(-half) - 1, 1.5 * math.exp(half) - 1), rel=1e-12)
    # Fieller: roots of ρ²(R_A² − z²V_A) − 2ρR_AR_B + R_B² − z²V_B = 0, bounded since R_A² > z²V_A.
    roots = np.sort(np.roots([ra**2 - z**2 * va, -2 * ra * rb, rb**2 - z**2 * vb]))
    low, high = inference.lift_confint(a, b, 0.05, "fieller")
    assert (low, high) == pytest.approx(tuple(roots - 1), rel=1e-10)
    # At its bounds the Fieller pivot equals z² exactly.
    for r in roots:
        assert (rb - r * ra) ** 2 / (vb + r**2 * va) == pytest.approx(z**2, rel=1e-9)


def test_fieller_unbounded_when_control_not_away_from_zero():
    a = SufficientStats.from_arrays([1, 1, 1, 1], [0, 0, 0, 1])
    b = SufficientStats.from_arrays([1, 1, 1, 1], [1, 0, 1, 1])
    low, high = inference.lift_confint(a, b, 0.05, "fieller")
    assert low == -np.inf and high == np.inf


@pytest.mark.parametrize("counts", [(480, 10_000, 560, 10_000), (30, 1000, 21, 1500), (7, 90, 12, 80)])
def test_iid_cases_equal_statsmodels(counts):
    # One impression per user: the per-impression tests are the right reference.
    c_a, m_a, c_b, m_b = counts
    a = SufficientStats.from_arrays(np.ones(m_a), np.r_[np.ones(c_a), np.zeros(m_a - c_a)])
    b = SufficientStats.from_arrays(np.ones(m_b), np.r_[np.ones(c_b), np.zeros(m_b - c_b)])
    z, p = proportions_ztest([c_b, c_a], [m_b, m_a])
    naive = inference.naive_ztest(a, b)
    assert naive.z == pytest.approx(z, rel=1e-9, abs=1e-12)
    assert naive.p_value == pytest.approx(p, rel=1e-9, abs=1e-12)
    low, high = confint_proportions_2indep(c_b, m_b, c_a, m_a, compare="ratio", method="log")
    assert inference.naive_lift_confint(a, b) == pytest.approx((low - 1, high - 1), rel=1e-9)
    low, high = confint_proportions_2indep(c_b, m_b, c_a, m_a, compare="diff", method="wald")
    assert inference.naive_diff_confint(a, b) == pytest.approx((low, high), rel=1e-9)
    # The delta method reduces to the Wald variance up to Bessel's n/(n − 1).
    for s, c, m in ((a, c_a, m_a), (b, c_b, m_b)):
        p_hat = c / m
        assert s.ratio_variance * (m - 1) / m == pytest.approx(p_hat * (1 - p_hat) / m, rel=1e-9)
    assert inference.design_effect(a, b) == pytest.approx(1.0, rel=0.02)  # Bessel at n = 80


def test_functions_vectorise_over_runs():
    rng = np.random.default_rng(3)
    m = rng.integers(1, 30, size=(4, 2, 50))
    c = rng.binomial(m, 0.1)
    batch = [SufficientStats.from_arrays(m[:, g], c[:, g]) for g in range(2)]
    p = inference.delta_method_test(*batch).p_value
    assert p.shape == (4,)
    for run in range(4):
        single = [SufficientStats.from_arrays(m[run, g], c[run, g]) for g in range(2)]
        assert inference.delta_method_test(*single).p_value == pytest.approx(p[run], rel=1e-12)


def test_srm_matches_scipy_chisquare():
    counts = [821_588, 815_482]  # Microsoft ExP's example
    assert srm.srm_p_value(counts) == pytest.approx(sps.chisquare(counts).pvalue, rel=1e-9)
    assert srm.srm_flag(srm.srm_p_value(counts))
    counts, weights = [5100, 2950, 1950], [0.5, 0.3, 0.2]
    expected = np.array(weights) * sum(counts)
    assert srm.srm_p_value(counts, weights) == pytest.approx(sps.chisquare(counts, expected).pvalue, rel=1e-9)
    assert not srm.srm_flag(srm.srm_p_value([1000, 1010]))


def test_holm_and_bh_match_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001, 0.04, 0.9])
    np.testing.assert_allclose(multiple.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(multiple.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    np.testing.assert_allclose(multiple.adjust([0.5], "bh"), [0.5])


def test_power_and_mde_match_statsmodels():
    se, effect = 0.0004, 0.001
    assert power.achieved_power(se, effect) == pytest.approx(normal_power(effect / se, 1, 0.05), rel=1e-9)
    # MDE at 80 %: the effect that NormalIndPower finds for this SE (equal buckets of n users,
    # per-user σ = 1 ⇒ SE of the difference = sqrt(2/n)).
    n = 2000
    d = NormalIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=1.0)
    assert power.minimum_detectable_effect(math.sqrt(2 / n), 1.0) == pytest.approx(d, rel=1e-5)
    n_needed = power.required_users_per_bucket(per_user_variance=1.0, baseline=1.0, relative_mde=d)
    assert n_needed == pytest.approx(n, rel=1e-5)


def test_sequential_confidence_sequence_by_hand():
    # Hand-worked gbstats formula, α = 0.05, N* = 5000, N = 4000 users, estimate 0.05, SE 0.02:
    # ρ² = (−2 ln .05 + ln(−2 ln .05 + 1)) / 5000 = (5.9914645 + 1.9446914) / 5000 = 1.587231e-3
    # k = Nρ² + 1 = 7.348924, ln(√k/α) = 0.997277 + 2.995732 = 3.993009,
    # half = 0.02·√4000 · sqrt(2k·3.993009 / (4000²ρ²)) = 1.264911 · sqrt(58.6886/25395.7) = 0.060807
    rho2 = (5.991464547107979 + math.log(6.991464547107979)) / 5000
    assert sequential.sequential_rho(0.05) ** 2 == pytest.approx(rho2, rel=1e-12)
    n, est, se = 4000, 0.05, 0.02
    s2 = se**2 * n
    k = n * rho2 + 1
    half = math.sqrt(s2) * math.sqrt(2 * k * math.log(math.sqrt(k) / 0.05) / (n**2 * rho2))
    assert sequential.sequential_halfwidth(se, n) == pytest.approx(half, rel=1e-12)
    assert half == pytest.approx(0.060807, abs=2e-6)  # vs the fixed-horizon 1.96·0.02 = 0.0392
    e_value = math.exp(rho2 * (est**2 * n / se**2) / (2 * k)) / math.sqrt(k)
    assert sequential.sequential_p_value(est, se, n) == pytest.approx(min(1, 1 / e_value), rel=1e-12)
    # Duality: p < α exactly when 0 is outside the sequence.
    for estimate in (0.03, 0.056, 0.057, 0.08):
        p = sequential.sequential_p_value(estimate, se, n)
        assert (p < 0.05) == (abs(estimate) > sequential.sequential_halfwidth(se, n))


def test_compare_builds_a_complete_row():
    a, b = SufficientStats.from_arrays(A_M, A_C), SufficientStats.from_arrays(B_M, B_C)
    row = compare("A", a, "B", b, sequential_mode=True).to_dict()
    assert set(REPORT_KEYS) <= set(row)
    assert row["relative_lift"] == pytest.approx(0.5)
    assert row["impressions_control"] == 45 and row["users_treatment"] == 5
    assert row["srm_p"] == pytest.approx(1.0)
    assert row["ci_low_sequential"] < row["ci_low"] and row["p_value_sequential"] >= row["p_value"]
    rows = compare_all({"A": a, "B": b, "C": b}, "A")
    assert [r.treatment for r in rows] == ["B", "C"]
    assert rows[0].p_value_holm == pytest.approx(min(1.0, 2 * rows[0].p_value))


def test_stats_by_group_and_day_cumulative_and_daily():
    from abtest.stats.sufficient import stats_by_group_and_day

    groups = np.array([0, 0, 1, 1])
    m = np.array([[4, 0, 3, 7], [6, 5, 0, 0], [0, 0, 2, 0]])  # [days, users]
    c = np.array([[1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 1, 0]])
    cum = stats_by_group_and_day(groups, m, c, 2)
    assert cum[0][0] == SufficientStats.from_arrays([4], [1])
    assert cum[1][0] == SufficientStats.from_arrays([10, 5], [1, 2])
    assert cum[2][1] == SufficientStats.from_arrays([5, 7], [2, 0])
    daily = stats_by_group_and_day(groups, m, c, 2, cumulative=False)
    assert daily[1][1].n == 0 and daily[2][1] == SufficientStats.from_arrays([2], [1])


def test_lift_test_by_hand_five_user_example():
    # The report's p is the two-sided normal p of z = L / SE(L): L = 0.5, Var(L) = 891/4320 + 47/180
    # (worked in test_delta_method_five_user_example_by_hand).
    a, b = SufficientStats.from_arrays(A_M, A_C), SufficientStats.from_arrays(B_M, B_C)
    z = 0.5 / math.sqrt(891 / 4320 + 47 / 180)
    test = inference.lift_test(a, b, 0.05, "delta")
    assert test.z == pytest.approx(z, rel=1e-12)
    assert test.p_value == pytest.approx(2 * sps.norm.sf(z), rel=1e-12)
    # log: z = log(1.5) / sqrt(V_B/R_B² + V_A/R_A²); fieller: the absolute-difference z.
    va, vb = 47 / 32805, 11 / 4320
    assert inference.lift_test(a, b, 0.05, "log").z == pytest.approx(
        math.log(1.5) / math.sqrt(vb * 36 + va * 81), rel=1e-12)
    assert inference.lift_test(a, b, 0.05, "fieller").z == pytest.approx((1 / 18) / math.sqrt(va + vb), rel=1e-12)
    assert compare("A", a, "B", b).p_value == pytest.approx(2 * sps.norm.sf(z), rel=1e-12)


@pytest.mark.parametrize("method", ["delta", "log", "fieller"])
def test_p_value_and_ci_always_agree(method):
    """Over 4,000 A/A-like runs of 300 users per bucket: p < α exactly when the CI excludes 0
    (issue 16: the old p tested the absolute difference, the CI the relative lift, and 1 % of
    runs disagreed)."""
    rng = np.random.default_rng(16)
    m = rng.geometric(1 / 20, size=(4000, 2, 300))
    c = rng.binomial(m, rng.beta(2, 50, size=m.shape))
    a, b = SufficientStats.from_arrays(m[:, 0], c[:, 0]), SufficientStats.from_arrays(m[:, 1], c[:, 1])
    test = inference.lift_test(a, b, 0.05, method)
    excludes_zero = (test.ci_low > 0) | (test.ci_high < 0)
    bounded = np.isfinite(test.ci_low) & np.isfinite(test.ci_high)
    assert np.array_equal((test.p_value < 0.05)[bounded], excludes_zero[bounded])
    assert bounded.mean() > 0.99
    # The old pairing (absolute-difference p with the linear-delta lift CI) disagreed in some runs.
    if method == "delta":
        old = inference.delta_method_test(a, b).p_value < 0.05
        assert (old != excludes_zero).sum() > 0


def test_degenerate_buckets_are_refused_with_the_reason():
    from abtest.stats.comparison import DegenerateComparison

    ok = SufficientStats.from_arrays([10, 12], [1, 3])
    # Issue 16: a control with zero clicks gave p = 1.6e-16 on 2 + 2 users.
    no_clicks = SufficientStats.from_arrays([10, 12], [0, 0])
    with pytest.raises(DegenerateComparison, match="control bucket 'A' has no clicks.*ZERO_NEGATIVE_BASELINE"):
        compare("A", no_clicks, "B", ok)
    with pytest.raises(DegenerateComparison, match="treatment bucket 'B' has zero variance.*no user clicked"):
        compare("A", ok, "B", no_clicks)
    same_ctr = SufficientStats.from_arrays([10, 20, 30], [1, 2, 3])
    with pytest.raises(DegenerateComparison, match="zero variance.*every user has the same CTR"):
        compare("A", same_ctr, "B", ok)
    with pytest.raises(DegenerateComparison, match="has 1 user"):
        compare("A", SufficientStats.from_arrays([10], [1]), "B", ok)
    assert inference.degenerate_reason(ok, control=True) is None
