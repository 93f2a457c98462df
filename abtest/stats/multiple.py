"""Multiple-comparison adjustment across the comparisons of one report (ABTEST_STATS.md §2.8).

Holm (family-wise error) and Benjamini–Hochberg (false discovery rate), returning adjusted
p-values as statsmodels ``multipletests(method="holm" | "fdr_bh")[1]`` does.
"""
from __future__ import annotations

import numpy as np

ADJUSTMENTS = ("holm", "bh")


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p: max over j ≤ i of (k − j + 1)·p_(j), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    k = p.size
    order = np.argsort(p, kind="stable")
    scaled = (k - np.arange(k)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(k)
    out[order] = adjusted_sorted
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    """BH step-up adjusted p: min over j ≥ i of k·p_(j)/j, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    k = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * k / np.arange(1, k + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(k)
    out[order] = adjusted_sorted
    return out


def adjust(p_values, method: str) -> np.ndarray:
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"unknown adjustment {method!r}; choose one of {ADJUSTMENTS}")
