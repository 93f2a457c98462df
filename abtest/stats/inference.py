"""Two-bucket inference for CTR = Σclicks/Σimpressions with users as the randomisation unit.

* ``delta_method_test`` — the default: user-level delta method (Deng, Knoblich, Lu, "Applying
  the Delta Method in Metric Analytics", KDD 2018; GrowthBook gbstats ``RatioStatistic``), z-test
  of R_B − R_A with Var(R_A) + Var(R_B) (ABTEST_STATS.md §2.3).
* ``naive_ztest`` — pooled two-proportion z-test over impressions, identical to statsmodels
  ``proportions_ztest``; reported beside the default because it is anti-conservative when users
  differ in CTR and see several impressions (ABTEST_STATS.md §2.1–2.2).
* ``lift_confint`` — CI for the relative lift L = R_B/R_A − 1: linear delta (default), log-ratio
  delta, or Fieller (ABTEST_STATS.md §2.4).

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
