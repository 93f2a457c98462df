"""Sample-ratio mismatch: Pearson χ² of user counts against the configured split.

As GrowthBook ``check_srm`` and Eppo do (ABTEST_STATS.md §2.6): on randomisation units (users),
never on impressions, df = k − 1, flagged at p < 0.001.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as _sps

SRM_ALPHA = 0.001


def srm_p_value(user_counts: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """p-value of χ² = Σ (observed − expected)² / expected with expected = N·w/Σw.

    Args:
        user_counts: users per bucket, [k].
        weights: configured traffic split, [k] (any positive scale); equal when omitted.
    """
    observed = np.asarray(user_counts, dtype=np.float64)
    w = np.ones_like(observed) if weights is None else np.asarray(weights, dtype=np.float64)
    if observed.shape != w.shape or observed.size < 2:
        raise ValueError("SRM needs at least two buckets and one weight per bucket")
    if np.any(w <= 0):
        raise ValueError("SRM weights must be positive")
    total = observed.sum()
    if total <= 0:
        return float("nan")
    expected = total * w / w.sum()
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return float(_sps.chi2.sf(chi2, df=observed.size - 1))


def srm_flag(p_value: float, alpha: float = SRM_ALPHA) -> bool:
    return bool(p_value < alpha)
