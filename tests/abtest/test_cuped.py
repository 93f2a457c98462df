"""CUPED for the CTR ratio metric, checked against gbstats' published formulas worked in numpy
here (not through the implementation), an influence-function derivation, and simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abtest.stats import cuped, inference
from abtest.stats.comparison import compare
from abtest.stats.sufficient import ALL_FIELD_NAMES, SufficientStats, stats_by_group


def _users(rng, n, lift=1.0, persistence=1.0):
    """Per-user (m, c, m_pre, c_pre): a persistent CTR θ and activity drive both periods."""
    theta = rng.beta(2, 40, n)
    activity = rng.gamma(0.8, 60, n)  # ~48 impressions, ~2.3 clicks per user and period
    m_pre = rng.poisson(activity)
    pre_theta = persistence * theta + (1 - persistence) * rng.permutation(theta)
    c_pre = rng.binomial(m_pre, pre_theta)
    m = rng.poisson(activity)
    c = rng.binomial(m, np.clip(theta * lift, 0, 1))
    return m, c, m_pre, c_pre


def _stats(users):
    m, c, m_pre, c_pre = users
    return SufficientStats.from_arrays(m, c, pre_impressions=m_pre, pre_clicks=c_pre)


class GbstatsRatioCuped:
    """gbstats ``RegressionAdjustedRatioStatistic`` + ``frequentist_variance_relative_cuped_ratio``
    (growthbook/growthbook, packages/stats/gbstats/models/{statistics,tests}.py), transcribed
    from the published source into numpy over per-user arrays: β = means of
    (m_post, d_post, m_pre, d_pre), Λ = their covariance, ``nabla`` the absolute gradient."""

    def __init__(self, users):
        m, c, m_pre, c_pre = (np.asarray(x, float) for x in users)
        x = np.stack([c, m, c_pre, m_pre])          # gbstats order: m_post, d_post, m_pre, d_pre
        self.n = x.shape[1]
        self.betahat = x.mean(axis=1)
        self.lambda_matrix = np.cov(x, ddof=1)

    def nabla(self, theta):
        b = self.betahat
        return np.array([1 / b[1], -b[0] / b[1] ** 2, -theta / b[3], theta * b[2] / b[3] ** 2])

    def mean(self, theta):
        b = self.betahat
        return b[0] / b[1] - theta * b[2] / b[3]

    @property
    def unadjusted_mean(self):
        return self.betahat[0] / self.betahat[1]

    def var_pre(self):
        g = self.nabla(1.0)
        return g[2:4] @ self.lambda_matrix[2:4, 2:4] @ g[2:4]

    def covariance(self):
        g = self.nabla(1.0)
        return g[2:4] @ self.lambda_matrix[2:4, 0:2] @ g[0:2]


def gbstats_theta(a: GbstatsRatioCuped, b: GbstatsRatioCuped) -> float:
    # compute_theta_regression_adjusted_ratio
    return -(a.covariance() + b.covariance()) / (a.var_pre() + b.var_pre())


def gbstats_relative(a: GbstatsRatioCuped, b: GbstatsRatioCuped, theta: float):
    """(point estimate, variance) of frequentist_diff(relative) / frequentist_variance_relative_cuped_ratio."""
    g_abs = b.mean(theta) - a.mean(theta)
    den = abs(a.unadjusted_mean)
    ba = a.betahat
    nabla_a = np.array([
        -(den + g_abs) / ba[1] / den**2,
        (ba[0] * den / ba[1] ** 2 + ba[0] * g_abs / ba[1] ** 2) / den**2,
        -a.nabla(theta)[2] / den,
        -a.nabla(theta)[3] / den,
    ])
    nabla_b = b.nabla(theta) / den
    var = nabla_a @ a.lambda_matrix @ nabla_a / a.n + nabla_b @ b.lambda_matrix @ nabla_b / b.n
    return g_abs / den, var


@pytest.fixture(scope="module")
def buckets():
    rng = np.random.default_rng(2013)
    return _users(rng, 4000), _users(rng, 3500, lift=1.04)


def test_matches_gbstats_formulas(buckets):
    control, treatment = buckets
    ga, gb = GbstatsRatioCuped(control), GbstatsRatioCuped(treatment)
    theta = gbstats_theta(ga, gb)
    lift, var = gbstats_relative(ga, gb, theta)
    got = cuped.adjusted_lift(_stats(control), _stats(treatment), alpha=0.05)
    assert float(got.theta) == pytest.approx(theta, rel=1e-10)
    assert float(got.lift) == pytest.approx(lift, rel=1e-10)
    assert float(got.se) == pytest.approx(math.sqrt(var), rel=1e-10)
    z = lift / math.sqrt(var)
    assert float(got.p_value) == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)
    half = sps.norm.isf(0.025) * math.sqrt(var)
    assert (float(got.ci_low), float(got.ci_high)) == pytest.approx((lift - half, lift + half), rel=1e-10)


def test_matches_the_influence_function_derivation(buckets):
    """Var of L = (A_B − A_A)/R_A from per-user influence values: treatment (e − θf)/R_A,
    control −((1 + g/R_A)e − θf)/R_A, with e, f the linearised post and pre CTR residuals."""
    control, treatment = buckets

    def linearise(users):
        m, c, m_pre, c_pre = (np.asarray(x, float) for x in users)
        r, r_pre = c.sum() / m.sum(), c_pre.sum() / m_pre.sum()
        return r, r_pre, (c - r * m) / m.mean(), (c_pre - r_pre * m_pre) / m_pre.mean()

    r_a, rp_a, e_a, f_a = linearise(control)
    r_b, rp_b, e_b, f_b = linearise(treatment)
    theta = (np.cov(e_a, f_a)[0, 1] + np.cov(e_b, f_b)[0, 1]) / (f_a.var(ddof=1) + f_b.var(ddof=1))
    g = (r_b - theta * rp_b) - (r_a - theta * rp_a)
    var = (np.var(-((1 + g / r_a) * e_a - theta * f_a) / r_a, ddof=1) / e_a.size
           + np.var((e_b - theta * f_b) / r_a, ddof=1) / e_b.size)
    got = cuped.adjusted_lift(_stats(control), _stats(treatment))
    assert float(got.theta) == pytest.approx(theta, rel=1e-10)
    assert float(got.lift) == pytest.approx(g / r_a, rel=1e-10)
    assert float(got.se) ** 2 == pytest.approx(var, rel=1e-9)
    # Variance reduction against the unadjusted linear-delta variance of the relative lift.
    unadjusted = inference.lift_se(_stats(control), _stats(treatment)) ** 2
    assert float(got.variance_reduction) == pytest.approx(1 - var / unadjusted, rel=1e-9)
    assert 0.35 < float(got.variance_reduction) < 0.8  # a persistent CTR is a strong covariate


def test_theta_is_pooled_and_adjustment_vanishes_without_correlation():
    rng = np.random.default_rng(5)
    # Pre-period CTR unrelated to the post-period one: θ ≈ 0 and nothing is gained (or lost).
    a, b = _users(rng, 5000, persistence=0.0), _users(rng, 5000, persistence=0.0)
    got = cuped.adjusted_lift(_stats(a), _stats(b))
    assert abs(float(got.theta)) < 0.1
    assert abs(float(got.variance_reduction)) < 0.02
    # The same θ for both buckets: swapping them gives the same θ.
    assert float(cuped.theta(_stats(b), _stats(a))) == pytest.approx(float(got.theta), rel=1e-12)
    # A bucket with no pre-period traffic at all: θ = 0, the unadjusted lift comes back.
    m, c, _, _ = a
    empty = SufficientStats.from_arrays(m, c, pre_impressions=np.zeros_like(m), pre_clicks=np.zeros_like(c))
    m, c, _, _ = b
    empty_b = SufficientStats.from_arrays(m, c, pre_impressions=np.zeros_like(m), pre_clicks=np.zeros_like(c))
    none = cuped.adjusted_lift(empty, empty_b)
    assert float(none.theta) == 0.0
    assert float(none.lift) == pytest.approx(float(inference.relative_lift(empty, empty_b)), rel=1e-12)
    assert float(none.se) == pytest.approx(float(inference.lift_se(empty, empty_b)), rel=1e-12)


def test_sufficient_statistics_with_a_pre_period_merge_and_group():
    rng = np.random.default_rng(1)
    m, c, m_pre, c_pre = _users(rng, 300)
    whole = SufficientStats.from_arrays(m, c, pre_impressions=m_pre, pre_clicks=c_pre)
    halves = (SufficientStats.from_arrays(m[:100], c[:100], pre_impressions=m_pre[:100], pre_clicks=c_pre[:100])
              + SufficientStats.from_arrays(m[100:], c[100:], pre_impressions=m_pre[100:], pre_clicks=c_pre[100:]))
    assert set(whole.to_dict()) == set(ALL_FIELD_NAMES)
    for name in ALL_FIELD_NAMES:
        assert getattr(halves, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert whole.sum_m_c_pre == pytest.approx(float(np.sum(m * c_pre)))
    assert whole.sum_cm_pre == pytest.approx(float(np.sum(c_pre * m_pre)))
    groups = rng.integers(0, 2, m.size)
    by_group = stats_by_group(groups, m, c, 2, pre_impressions=m_pre, pre_clicks=c_pre)
    first = groups == 0
    assert by_group[0] == SufficientStats.from_arrays(m[first], c[first], pre_impressions=m_pre[first],
                                                      pre_clicks=c_pre[first])
    # Merging with a shard that has no pre-period drops the pre-period (it is not all users').
    assert not (whole + SufficientStats.from_arrays(m, c)).has_pre_period
    with pytest.raises(ValueError, match="pre-period statistics need all"):
        SufficientStats(1, 1.0, 1.0, 1.0, 1.0, 1.0, sum_c_pre=1.0)


def test_compare_reports_cuped_beside_the_unadjusted_figures(buckets):
    control, treatment = buckets
    row = compare("A", _stats(control), "B", _stats(treatment)).to_dict()
    plain = compare("A", _stats(control).without_pre_period(), "B", _stats(treatment).without_pre_period())
    assert row["relative_lift"] == pytest.approx(plain.relative_lift) and row["ci_low"] == pytest.approx(plain.ci_low)
    assert plain.relative_lift_cuped is None
    assert row["ci_high_cuped"] - row["ci_low_cuped"] < row["ci_high"] - row["ci_low"]
    width_ratio = (row["ci_high_cuped"] - row["ci_low_cuped"]) / (row["ci_high"] - row["ci_low"])
    assert width_ratio == pytest.approx(math.sqrt(1 - row["variance_reduction_cuped"]), rel=1e-9)
    assert row["significant_cuped"] == (row["p_value_cuped"] < 0.05)
    assert (row["p_value_cuped"] < 0.05) == (row["ci_low_cuped"] > 0 or row["ci_high_cuped"] < 0)


def test_cuped_se_matches_the_spread_of_the_estimate_over_repeated_experiments():
    """Across 400 simulated experiments with a true +4 % lift, the SD of the CUPED lift equals
    its mean SE (the variance formula is right), it is narrower than the unadjusted lift's, and
    both estimates centre on the truth."""
    rng = np.random.default_rng(77)
    adjusted, se, plain = [], [], []
    for _ in range(400):
        a, b = _stats(_users(rng, 1500)), _stats(_users(rng, 1500, lift=1.04))
        got = cuped.adjusted_lift(a, b)
        adjusted.append(float(got.lift))
        se.append(float(got.se))
        plain.append(float(inference.relative_lift(a, b)))
    adjusted, se, plain = np.array(adjusted), np.array(se), np.array(plain)
    assert adjusted.std(ddof=1) == pytest.approx(se.mean(), rel=0.1)  # ±3.5 σ of an SD over 400 draws
    assert adjusted.std(ddof=1) < 0.8 * plain.std(ddof=1)
    assert adjusted.mean() == pytest.approx(0.04, abs=4 * adjusted.std(ddof=1) / 20)
    assert plain.mean() == pytest.approx(0.04, abs=4 * plain.std(ddof=1) / 20)
