"""Two-bucket inference for CTR = Σclicks/Σimpressions with users as the randomisation unit.

* ``delta_method_test`` — the default: user-level delta method (Deng, Knoblich, Lu, "Applying
  the Delta Method in Metric Analytics", KDD 2018; GrowthBook gbstats ``RatioStatistic``), z-test
  of R_B − R_A with Var(R_A) + Var(R_B) (ABTEST_STATS.md §2.3).
* ``naive_ztest`` — pooled two-proportion z-test over impressions, identical to statsmodels
  ``proportions_ztest``; reported beside the default because it is anti-conservative when users
  differ in CTR and see several impressions (ABTEST_STATS.md §2.1–2.2).
* ``lift_confint`` — CI for the relative lift L = R_B/R_A − 1: linear delta (default), log-ratio
  delta, or Fieller (ABTEST_STATS.md §2.4).
* ``lift_test`` — the report's test: the p-value of H0: L = 0 from the *same* statistic as the
  lift CI of the chosen method, so p < α exactly when the CI excludes 0 (gbstats'
  ``TwoSidedTTest`` computes its p-value and CI from one point estimate and SE in the same way):
  ``delta`` z = L̂ / SE(L̂) with the linear delta-method SE; ``log`` z = log(R_B/R_A) / SE of the
  log ratio; ``fieller`` z = (R_B − R_A)/√(V_A + V_B), the statistic whose acceptance region in
  ρ = R_B/R_A is Fieller's interval.
* ``degenerate_reason`` — why a bucket cannot be tested (too few users, no impressions, a control
  without clicks, zero variance), as gbstats refuses ``ZERO_NEGATIVE_VARIANCE`` and
  ``ZERO_NEGATIVE_BASELINE_VARIATION``.

All functions accept ``SufficientStats`` whose fields are scalars or equally-shaped arrays and
return numpy values of that shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from abtest.stats.sufficient import SufficientStats

LIFT_CI_METHODS = ("delta", "log", "fieller")


@dataclass(frozen=True)
class ZTestResult:
    """Estimate of R_B − R_A, its standard error, z statistic and two-sided p-value."""

    diff: Any
    se: Any
    z: Any
    p_value: Any


def z_critical(alpha: float) -> float:
    return float(_sps.norm.isf(alpha / 2.0))


def two_sided_p(z):
    return 2.0 * _sps.norm.sf(np.abs(z))


def _z_and_p(diff, se):
    """z = diff/se; when se = 0 the test is degenerate: p = 1 if diff = 0, else 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf * np.sign(diff)))
    return z, two_sided_p(z)


def delta_method_test(control: SufficientStats, treatment: SufficientStats) -> ZTestResult:
    """User-level z-test of R_B − R_A, Var = Var(R_A) + Var(R_B) by the delta method."""
    diff = np.asarray(treatment.ctr - control.ctr, dtype=np.float64)
    se = np.sqrt(np.asarray(control.ratio_variance + treatment.ratio_variance, dtype=np.float64))
    z, p = _z_and_p(diff, se)
    return ZTestResult(diff=diff, se=se, z=z, p_value=p)


@dataclass(frozen=True)
class LiftTest:
    """Relative lift L̂, its (1 − α) CI and the p-value of H0: L = 0, all from one statistic z."""

    lift: Any
    ci_low: Any
    ci_high: Any
    z: Any
    p_value: Any
    method: str


#: What each lift CI method's p-value tests (stated in the reports).
LIFT_TEST_STATISTICS = {
    "delta": "z = relative lift / its delta-method SE",
    "log": "z = log(CTR_B / CTR_A) / its delta-method SE",
    "fieller": "z = (CTR_B − CTR_A) / √(Var_A + Var_B), the statistic Fieller's interval inverts",
}


def lift_test(control: SufficientStats, treatment: SufficientStats, alpha: float = 0.05,
              method: str = "delta") -> LiftTest:
    """The relative lift, its CI and a p-value that agrees with it (see the module docstring).

    For ``fieller`` the CI is unbounded when the control CTR is not significantly above 0; the
    p-value is then still that of the absolute difference.
    """
    low, high = lift_confint(control, treatment, alpha, method)
    lift = relative_lift(control, treatment)
    r_a, r_b = np.asarray(control.ctr, float), np.asarray(treatment.ctr, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delta":
            estimate, se = lift, lift_se(control, treatment)
        elif method == "log":
            estimate = np.log(r_b / r_a)
            se = np.sqrt(treatment.ratio_variance / r_b**2 + control.ratio_variance / r_a**2)
        else:
            estimate = r_b - r_a
            se = np.sqrt(np.asarray(control.ratio_variance + treatment.ratio_variance, dtype=np.float64))
    z, p = _z_and_p(np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64))
    return LiftTest(lift=lift, ci_low=low, ci_high=high, z=z, p_value=p, method=method)


#: Variance of the linearised CTR at or below this fraction of its scale counts as zero.
_ZERO_VARIANCE = 1e-10


def degenerate_reason(stats: SufficientStats, control: bool) -> str | None:
    """Why this bucket (scalar statistics) cannot enter a lift test, or None.

    Args:
        control: the bucket is the control (its CTR is the lift's denominator).
    """
    if stats.n < 2:
        return f"has {stats.n} user(s); at least 2 are needed for a variance"
    if not stats.sum_m > 0:
        return "has zero impressions"
    if control and not stats.sum_c > 0:
        return ("has no clicks: the control CTR is 0, so the relative lift and its variance are "
                "undefined (gbstats: ZERO_NEGATIVE_BASELINE_VARIATION)")
    r = float(stats.ctr)
    scale = float(stats.var_c + r * r * stats.var_m)
    variance = float(stats.per_user_ratio_variance * stats.mean_m**2)
    if not (scale > 0 and variance > _ZERO_VARIANCE * scale):
        why = "no user clicked" if stats.sum_c == 0 else "every user has the same CTR"
        return (f"has zero variance of the per-user linearised CTR ({why}), so the test has no "
                f"standard error (gbstats: ZERO_NEGATIVE_VARIANCE)")
    return None


def naive_ztest(control: SufficientStats, treatment: SufficientStats) -> ZTestResult:
    """Pooled two-proportion z-test treating every impression as an independent Bernoulli draw.

    Equals statsmodels ``proportions_ztest([Σc_B, Σc_A], [Σm_B, Σm_A])``.
    """
    m_a, m_b = np.asarray(control.sum_m, float), np.asarray(treatment.sum_m, float)
    pooled = (np.asarray(control.sum_c, float) + treatment.sum_c) / (m_a + m_b)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / m_a + 1.0 / m_b))
    diff = np.asarray(treatment.ctr - control.ctr, dtype=np.float64)
    z, p = _z_and_p(diff, se)
    return ZTestResult(diff=diff, se=se, z=z, p_value=p)


def relative_lift(control: SufficientStats, treatment: SufficientStats):
    """L = R_B / R_A − 1 (nan when the control CTR is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r_a = np.asarray(control.ctr, float)
        return np.where(r_a > 0, np.asarray(treatment.ctr, float) / np.where(r_a > 0, r_a, 1.0) - 1.0, np.nan)


def lift_se(control: SufficientStats, treatment: SufficientStats):
    """SE of L by the linear delta method: Var ≈ V_B/R_A² + V_A·R_B²/R_A⁴ (gbstats, Eppo)."""
    r_a, r_b = np.asarray(control.ctr, float), np.asarray(treatment.ctr, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = treatment.ratio_variance / r_a**2 + control.ratio_variance * r_b**2 / r_a**4
    return np.sqrt(var)


def lift_confint(control: SufficientStats, treatment: SufficientStats, alpha: float = 0.05,
                 method: str = "delta"):
    """(1 − α) CI for the relative lift, each bound an array of the stats' shape.

    Args:
        method: ``"delta"`` — L ± z·SE (linear delta, symmetric);
            ``"log"`` — exp(log(R_B/R_A) ± z·sqrt(V_B/R_B² + V_A/R_A²)) − 1;
            ``"fieller"`` — the set of ρ with (R_B − ρR_A)² ≤ z²(V_B + ρ²V_A), minus 1;
            unbounded (−inf, inf) when the control CTR is not significantly above 0.

    Returns:
        (low, high).
    """
    if method not in LIFT_CI_METHODS:
        raise ValueError(f"unknown lift CI method {method!r}; choose one of {LIFT_CI_METHODS}")
    z = z_critical(alpha)
    r_a, r_b = np.asarray(control.ctr, float), np.asarray(treatment.ctr, float)
    v_a, v_b = np.asarray(control.ratio_variance, float), np.asarray(treatment.ratio_variance, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delta":
            lift = relative_lift(control, treatment)
            half = z * lift_se(control, treatment)
            return lift - half, lift + half
        if method == "log":
            log_ratio = np.log(r_b / r_a)
            half = z * np.sqrt(v_b / r_b**2 + v_a / r_a**2)
            return np.exp(log_ratio - half) - 1.0, np.exp(log_ratio + half) - 1.0
        a = r_a**2 - z**2 * v_a
        b = -2.0 * r_a * r_b
        c = r_b**2 - z**2 * v_b
        root = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
        bounded = a > 0
        safe_a = np.where(bounded, a, 1.0)
        low = np.where(bounded, (-b - root) / (2.0 * safe_a) - 1.0, -np.inf)
        high = np.where(bounded, (-b + root) / (2.0 * safe_a) - 1.0, np.inf)
        return low, high


def naive_diff_confint(control: SufficientStats, treatment: SufficientStats, alpha: float = 0.05):
    """Wald CI for R_B − R_A over impressions (statsmodels ``confint_proportions_2indep``,
    ``compare="diff", method="wald"``)."""
    z = z_critical(alpha)
    r_a, r_b = np.asarray(control.ctr, float), np.asarray(treatment.ctr, float)
    se = np.sqrt(r_a * (1 - r_a) / control.sum_m + r_b * (1 - r_b) / treatment.sum_m)
    return r_b - r_a - z * se, r_b - r_a + z * se


def naive_lift_confint(control: SufficientStats, treatment: SufficientStats, alpha: float = 0.05):
    """Katz log CI for L over impressions (statsmodels ``confint_proportions_2indep``,
    ``compare="ratio", method="log"``), as ``(low, high)`` of the relative lift."""
    z = z_critical(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(np.asarray(treatment.ctr, float) / control.ctr)
        se = np.sqrt(1.0 / treatment.sum_c - 1.0 / treatment.sum_m + 1.0 / control.sum_c - 1.0 / control.sum_m)
    return np.exp(log_ratio - z * se) - 1.0, np.exp(log_ratio + z * se) - 1.0


def design_effect(control: SufficientStats, treatment: SufficientStats):
    """Delta-method Var(R_B − R_A) ÷ the binomial (per-impression) variance of the same difference.

    ≈ Kish's 1 + ρ(Σm²/Σm − 1) (ABTEST_STATS.md §2.2); > 1 means the naive test is too narrow.
    """
    r_a, r_b = np.asarray(control.ctr, float), np.asarray(treatment.ctr, float)
    binomial = r_a * (1 - r_a) / control.sum_m + r_b * (1 - r_b) / treatment.sum_m
    with np.errstate(divide="ignore", invalid="ignore"):
        return (control.ratio_variance + treatment.ratio_variance) / binomial
