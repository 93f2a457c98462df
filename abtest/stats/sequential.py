"""Always-valid inference for reports read while the experiment runs (ABTEST_STATS.md §2.7).

GrowthBook's asymptotic confidence sequence (Waudby-Smith et al. 2023, eq. 9 and 155; gbstats
``sequential_rho``, ``sequential_interval_halfwidth``, ``sequential_p_value``): with
N = n_A + n_B users, SE of the estimate, tuning N* (where the sequence is tightest):

    ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / N*)
    half-width = sqrt(SE²·N) · sqrt(2(Nρ²+1) / (N²ρ²) · ln(√(Nρ²+1)/α))
    p = min(1, 1/E),  E = exp(ρ²·t² / (2(Nρ²+1))) / √(Nρ²+1),  t² = estimate²·N / SE²

The p-value is dual to the sequence: p < α exactly when 0 lies outside estimate ± half-width.
Peeking at such a sequence any number of times keeps the false-positive rate ≤ α.
"""
from __future__ import annotations

import numpy as np

DEFAULT_TUNING = 5000.0


def sequential_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if tuning <= 0:
        raise ValueError("the sequential tuning parameter must be positive")
    log_alpha = np.log(alpha)
    return float(np.sqrt((-2.0 * log_alpha + np.log(-2.0 * log_alpha + 1.0)) / tuning))


def sequential_halfwidth(se, n_total, alpha: float = 0.05, tuning: float = DEFAULT_TUNING):
    """Half-width of the two-sided (1 − α) confidence sequence for an estimate with this SE.

    Args:
        se: standard error of the estimate (e.g. of the relative lift), scalar or array.
        n_total: users in both buckets.
    """
    rho = sequential_rho(alpha, tuning)
    n = np.asarray(n_total, dtype=np.float64)
    s2 = np.square(np.asarray(se, float)) * n  # per-user analogue of SE²
    n_rho_sq_p1 = n * rho**2 + 1.0
    return np.sqrt(s2) * np.sqrt(2.0 * n_rho_sq_p1 * np.log(np.sqrt(n_rho_sq_p1) / alpha) / (n * rho) ** 2)


def sequential_p_value(estimate, se, n_total, alpha: float = 0.05, tuning: float = DEFAULT_TUNING):
    """Always-valid two-sided p-value min(1, 1/E) of H0: estimate = 0 (eq. 155 of Waudby-Smith
    et al. 2023); t² = estimate²·N/SE² is (N·estimate)² over the per-user variance s² = SE²·N."""
    rho = sequential_rho(alpha, tuning)
    n = np.asarray(n_total, dtype=np.float64)
    se = np.asarray(se, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.square(np.asarray(estimate, float)) * n / np.square(se)
    n_rho_sq_p1 = n * rho**2 + 1.0
    # log-space: the e-value overflows for very strong evidence while 1/E just goes to 0.
    log_e = rho**2 * t2 / (2.0 * n_rho_sq_p1) - 0.5 * np.log(n_rho_sq_p1)
    return np.where(log_e <= 0, 1.0, np.minimum(np.exp(-log_e), 1.0))
