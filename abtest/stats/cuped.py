"""CUPED for the CTR ratio metric: regression adjustment on the users' pre-period clicks and
impressions (Deng, Xu, Kohavi, Walker, "Improving the Sensitivity of Online Controlled
Experiments by Utilizing Pre-Experiment Data", WSDM 2013; for ratio metrics, the delta method
of Deng, Knoblich, Lu, KDD 2018).

The estimator and its variance are GrowthBook gbstats' ``RegressionAdjustedRatioStatistic``
(``gbstats/models/statistics.py``, ``compute_theta_regression_adjusted_ratio``; relative
variance ``frequentist_variance_relative_cuped_ratio`` in ``gbstats/models/tests.py``), worked
from the 15 sufficient statistics of ``SufficientStats``:

* per bucket g, β_g = (c̄, m̄, c̄', m̄') are the per-user means of post clicks, post impressions,
  pre clicks, pre impressions and Λ_g their 4×4 sample covariance (ddof = 1);
* R = c̄/m̄ (the bucket's CTR), R' = c̄'/m̄' (its pre-period CTR), and the adjusted CTR is
  A_g = R_g − θ·R'_g;
* θ is pooled across the two buckets: with the linearisations ∇R = (1/m̄, −c̄/m̄², 0, 0) and
  ∇R' = (0, 0, 1/m̄', −c̄'/m̄'²), θ = Σ_g ∇Rᵀ Λ_g ∇R' / Σ_g ∇R'ᵀ Λ_g ∇R' (per-user covariance of
  the post and pre CTR over the per-user variance of the pre CTR, each summed over buckets);
* the adjusted relative lift is L_cuped = (A_B − A_A) / R_A (divided by the *unadjusted* control
  CTR, as gbstats does), with delta-method variance ∇_Aᵀ Λ_A ∇_A / n_A + ∇_Bᵀ Λ_B ∇_B / n_B where
  ∇_B = (∂A_B/∂β_B)/R_A and ∇_A = ∂L_cuped/∂β_A (R_A appears in the numerator and denominator).

The test statistic is z = L_cuped / SE; the p-value and the (1 − α) CI L_cuped ± z_{1−α/2}·SE
come from it, so p < α exactly when the CI excludes 0. Users with no pre-period traffic carry
c' = m' = 0, which the bucket means handle (no per-user pre-period ratio is ever formed).

Every function accepts ``SufficientStats`` whose fields are scalars or equally-shaped arrays
(e.g. one entry per A/A run) and returns numpy values of that shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from abtest.stats import inference
from abtest.stats.sufficient import SufficientStats

#: gbstats reverts to the unadjusted statistic when |θ| is below this.
THETA_EPSILON = 1e-8


@dataclass(frozen=True)
class CupedResult:
    """The adjusted relative lift and everything a report row shows beside the unadjusted one.

    Attributes:
        lift: L_cuped = (A_B − A_A) / R_A.
        se: its delta-method standard error.
        z, p_value: z = lift/se and the two-sided normal p-value.
        ci_low, ci_high: lift ∓ z_{1−α/2}·se.
        theta: the pooled adjustment coefficient.
        variance_reduction: 1 − Var(L_cuped)/Var(L) with Var(L) the unadjusted linear-delta
            variance of the relative lift (``inference.lift_se``²).
    """

    lift: Any
    se: Any
    z: Any
    p_value: Any
    ci_low: Any
    ci_high: Any
    theta: Any
    variance_reduction: Any


def moments(stats: SufficientStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-user means β [..., 4] and sample covariance Λ [..., 4, 4] (ddof = 1) of
    (c, m, c', m') from the bucket's sufficient statistics."""
    if not stats.has_pre_period:
        raise ValueError("CUPED needs the pre-period sufficient statistics (pre_impressions, pre_clicks)")
    n = np.asarray(stats.n, dtype=np.float64)
    sums = [np.asarray(x, dtype=np.float64) for x in (stats.sum_c, stats.sum_m, stats.sum_c_pre, stats.sum_m_pre)]
    # Σ x_i·x_j for (c, m, c', m') in that order.
    products = {
        (0, 0): stats.sum_c2, (1, 1): stats.sum_m2, (2, 2): stats.sum_c_pre2, (3, 3): stats.sum_m_pre2,
        (0, 1): stats.sum_cm, (2, 3): stats.sum_cm_pre, (0, 2): stats.sum_c_c_pre,
        (1, 3): stats.sum_m_m_pre, (0, 3): stats.sum_c_m_pre, (1, 2): stats.sum_m_c_pre,
    }
    shape = np.broadcast(n, *sums).shape
    cov = np.empty(shape + (4, 4))
    with np.errstate(divide="ignore", invalid="ignore"):
        for (i, j), total in products.items():
            value = (np.asarray(total, dtype=np.float64) - sums[i] * sums[j] / n) / (n - 1.0)
            cov[..., i, j] = cov[..., j, i] = value
        mean = np.stack([s / n for s in sums], axis=-1) * np.ones(shape + (1,))
    return mean, cov


def _quad(u: np.ndarray, cov: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...ij,...j->...", u, cov, v)


def _gradients(mean: np.ndarray):
    """∇R and ∇R' (each [..., 4]) of the post and pre-period CTR over β."""
    c, m, cp, mp = (mean[..., k] for k in range(4))
    zero = np.zeros_like(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_post = np.stack([1.0 / m, -c / m**2, zero, zero], axis=-1)
        d_pre = np.stack([zero, zero, 1.0 / mp, -cp / mp**2], axis=-1)
    return d_post, d_pre


def theta(control: SufficientStats, treatment: SufficientStats):
    """The pooled coefficient θ = Σ_g Cov_g(R, R') / Σ_g Var_g(R') (gbstats
    ``compute_theta_regression_adjusted_ratio``); 0 where the pre-period CTR has no variance."""
    num = den = 0.0
    for stats in (control, treatment):
        mean, cov = moments(stats)
        d_post, d_pre = _gradients(mean)
        num = num + _quad(d_post, cov, d_pre)
        den = den + _quad(d_pre, cov, d_pre)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.where(np.abs(t) < THETA_EPSILON, 0.0, t)


def adjusted_lift(control: SufficientStats, treatment: SufficientStats, alpha: float = 0.05,
                  theta_value=None) -> CupedResult:
    """CUPED-adjusted relative lift of treatment over control with its delta-method CI.

    Args:
        control, treatment: sufficient statistics with pre-period fields.
        theta_value: the adjustment coefficient (default: pooled over the two buckets).
    """
    th = theta(control, treatment) if theta_value is None else np.asarray(theta_value, dtype=np.float64)
    mean_a, cov_a = moments(control)
    mean_b, cov_b = moments(treatment)
    post_a, pre_a = _gradients(mean_a)
    post_b, pre_b = _gradients(mean_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_a = mean_a[..., 0] / mean_a[..., 1]
        r_b = mean_b[..., 0] / mean_b[..., 1]
        rp_a = mean_a[..., 2] / mean_a[..., 3]
        rp_b = mean_b[..., 2] / mean_b[..., 3]
        # A bucket with no pre-period impressions contributes no adjustment (R' := 0, ∇R' := 0).
        rp_a, rp_b = np.nan_to_num(rp_a, nan=0.0), np.nan_to_num(rp_b, nan=0.0)
        pre_a, pre_b = np.nan_to_num(pre_a, nan=0.0, posinf=0.0, neginf=0.0), \
            np.nan_to_num(pre_b, nan=0.0, posinf=0.0, neginf=0.0)
        th_ = th[..., None]
        diff = (r_b - th * rp_b) - (r_a - th * rp_a)
        lift = diff / r_a
        # ∂L/∂β_B = (∇R_B − θ∇R'_B)/R_A; ∂L/∂β_A = −(∇R_A − θ∇R'_A)/R_A − diff·∇R_A/R_A².
        grad_b = (post_b - th_ * pre_b) / r_a[..., None]
        grad_a = -(post_a - th_ * pre_a) / r_a[..., None] - (diff / r_a**2)[..., None] * post_a
        var = (_quad(grad_a, cov_a, grad_a) / np.asarray(control.n, dtype=np.float64)
               + _quad(grad_b, cov_b, grad_b) / np.asarray(treatment.n, dtype=np.float64))
        se = np.sqrt(var)
        z = lift / se
        unadjusted_var = np.square(inference.lift_se(control, treatment))
        reduction = 1.0 - var / unadjusted_var
    half = inference.z_critical(alpha) * se
    return CupedResult(lift=lift, se=se, z=z, p_value=inference.two_sided_p(z), ci_low=lift - half, ci_high=lift + half,
                       theta=th, variance_reduction=reduction)
