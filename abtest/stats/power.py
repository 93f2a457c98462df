"""Power and minimum detectable effect (MDE) for the user-level CTR test (ABTEST_STATS.md §2.9).

n per bucket = (z_{1−α/2} + z_{1−β})² (σ²_A + σ²_B) / Δ², with σ² the per-user linearised
variance Var(c − R·m)/m̄² (``SufficientStats.per_user_ratio_variance``).
"""
from __future__ import annotations

import numpy as np
from scipy import stats as _sps

DEFAULT_POWER = 0.8


def _z_sum(alpha: float, power: float) -> float:
    return float(_sps.norm.isf(alpha / 2.0) + _sps.norm.ppf(power))


def minimum_detectable_effect(se_diff, baseline, alpha: float = 0.05, power: float = DEFAULT_POWER):
    """Relative MDE: the lift detectable with the given power at this standard error of R_B − R_A.

    Args:
        se_diff: SE of R_B − R_A (delta method), scalar or array.
        baseline: control CTR R_A.

    Returns:
        (z_{1−α/2} + z_{power}) · se_diff / R_A.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _z_sum(alpha, power) * np.asarray(se_diff, float) / np.asarray(baseline, float)


def achieved_power(se_diff, effect, alpha: float = 0.05):
    """Two-sided power of a z-test for an absolute effect with this SE (both rejection tails),
    as statsmodels ``normal_power(effect/se, nobs=1, alpha)``."""
    crit = _sps.norm.isf(alpha / 2.0)
    d = np.abs(np.asarray(effect, float)) / np.asarray(se_diff, float)
    return _sps.norm.sf(crit - d) + _sps.norm.cdf(-crit - d)


def required_users_per_bucket(per_user_variance, baseline, relative_mde: float, alpha: float = 0.05,
                              power: float = DEFAULT_POWER, ratio: float = 1.0):
    """Users in the control bucket (the treatment gets ``ratio`` times as many) to detect a
    relative lift ``relative_mde`` of CTR ``baseline``, both buckets with per-user variance σ².

    Uses the one-tail approximation (the far rejection tail is ignored, as is usual).
    """
    delta = relative_mde * np.asarray(baseline, float)
    return _z_sum(alpha, power) ** 2 * np.asarray(per_user_variance, float) * (1.0 + 1.0 / ratio) / delta**2
