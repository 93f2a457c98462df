"""Per-bucket sufficient statistics of per-user clicks and impressions.

A bucket of n users with impressions m_i and clicks c_i is summarised by
(n, Σc, Σm, Σc², Σm², Σc·m) — exactly what GrowthBook's gbstats ``RatioStatistic`` and Eppo
consume (ABTEST_STATS.md §0, §2.3). Everything downstream (delta-method test, naive test,
lift CIs, power) is computed from these six numbers, so they can be produced by SQL or Beam
and merged by addition.

For CUPED (``abtest.stats.cuped``) the same users' pre-period clicks c'_i and impressions m'_i
add nine sums (``PRE_FIELD_NAMES``): Σc', Σm', Σc'², Σm'², Σc'm' and the cross products Σc·c',
Σm·m', Σc·m', Σm·c' — the 4×4 covariance of (c, m, c', m') that gbstats'
``RegressionAdjustedRatioStatistic`` is built from. A user with no pre-period traffic has
c' = m' = 0. The pre-period fields are ``None`` when there is no pre-period.

Every field may be a scalar or a numpy array of one shape (e.g. one entry per A/A run), so the
same formulas vectorise over many simulated experiments.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

FIELD_NAMES = ("n", "sum_c", "sum_m", "sum_c2", "sum_m2", "sum_cm")
#: Pre-period sums (c' = pre-period clicks, m' = pre-period impressions of the same user):
#: Σc', Σm', Σc'², Σm'², Σc'm', Σc·c', Σm·m', Σc·m', Σm·c'.
PRE_FIELD_NAMES = ("sum_c_pre", "sum_m_pre", "sum_c_pre2", "sum_m_pre2", "sum_cm_pre",
                   "sum_c_c_pre", "sum_m_m_pre", "sum_c_m_pre", "sum_m_c_pre")
ALL_FIELD_NAMES = FIELD_NAMES + PRE_FIELD_NAMES


@dataclass(frozen=True)
class SufficientStats:
    """Sufficient statistics of one bucket (users are the independent units).

    Attributes:
        n: number of users.
        sum_c, sum_m: Σ clicks, Σ impressions over users.
        sum_c2, sum_m2, sum_cm: Σ c_i², Σ m_i², Σ c_i·m_i over users.
        sum_c_pre … sum_m_c_pre: the pre-period sums of ``PRE_FIELD_NAMES`` (all ``None``
            without a pre-period).
    """

    n: Any
    sum_c: Any
    sum_m: Any
    sum_c2: Any
    sum_m2: Any
    sum_cm: Any
    sum_c_pre: Any = None
    sum_m_pre: Any = None
    sum_c_pre2: Any = None
    sum_m_pre2: Any = None
    sum_cm_pre: Any = None
    sum_c_c_pre: Any = None
    sum_m_m_pre: Any = None
    sum_c_m_pre: Any = None
    sum_m_c_pre: Any = None

    def __post_init__(self):
        given = [getattr(self, name) is not None for name in PRE_FIELD_NAMES]
        if any(given) and not all(given):
            missing = [name for name, ok in zip(PRE_FIELD_NAMES, given) if not ok]
            raise ValueError(f"pre-period statistics need all of {PRE_FIELD_NAMES}; missing {missing}")

    @classmethod
    def from_arrays(cls, impressions, clicks, axis: int = -1, pre_impressions=None,
                    pre_clicks=None) -> "SufficientStats":
        """Summarise per-user arrays (any shape; users along ``axis``), with the pre-period
        arrays of the same users when given (both or neither)."""
        m = np.asarray(impressions, dtype=np.float64)
        c = np.asarray(clicks, dtype=np.float64)
        if m.shape != c.shape:
            raise ValueError(f"impressions {m.shape} and clicks {c.shape} differ in shape")
        pre = {}
        if (pre_impressions is None) != (pre_clicks is None):
            raise ValueError("give both pre_impressions and pre_clicks, or neither")
        if pre_impressions is not None:
            mp = np.asarray(pre_impressions, dtype=np.float64)
            cp = np.asarray(pre_clicks, dtype=np.float64)
            if mp.shape != m.shape or cp.shape != m.shape:
                raise ValueError(f"pre-period arrays {mp.shape}, {cp.shape} differ in shape from {m.shape}")
            pre = dict(zip(PRE_FIELD_NAMES, (
                cp.sum(axis=axis), mp.sum(axis=axis), (cp * cp).sum(axis=axis), (mp * mp).sum(axis=axis),
                (cp * mp).sum(axis=axis), (c * cp).sum(axis=axis), (m * mp).sum(axis=axis),
                (c * mp).sum(axis=axis), (m * cp).sum(axis=axis))))
        return cls(
            n=m.shape[axis] if m.ndim else 1,
            sum_c=c.sum(axis=axis),
            sum_m=m.sum(axis=axis),
            sum_c2=(c * c).sum(axis=axis),
            sum_m2=(m * m).sum(axis=axis),
            sum_cm=(c * m).sum(axis=axis),
            **pre,
        )

    @classmethod
    def from_dict(cls, row: dict) -> "SufficientStats":
        names = ALL_FIELD_NAMES if row.get(PRE_FIELD_NAMES[0]) is not None else FIELD_NAMES
        return cls(**{name: row[name] for name in names})

    @classmethod
    def zero(cls, pre_period: bool = False) -> "SufficientStats":
        return cls(0, *([0.0] * (len(ALL_FIELD_NAMES if pre_period else FIELD_NAMES) - 1)))

    @property
    def has_pre_period(self) -> bool:
        return self.sum_c_pre is not None

    def without_pre_period(self) -> "SufficientStats":
        return SufficientStats(*(getattr(self, name) for name in FIELD_NAMES))

    def __add__(self, other: "SufficientStats") -> "SufficientStats":
        """Merge two disjoint sets of users (e.g. two shards of one bucket); the pre-period
        sums survive only when both sides have them."""
        names = ALL_FIELD_NAMES if self.has_pre_period and other.has_pre_period else FIELD_NAMES
        return SufficientStats(*(getattr(self, name) + getattr(other, name) for name in names))

    merge = __add__

    def to_dict(self) -> dict:
        """The six post-period fields, plus the nine pre-period ones when present."""
        names = ALL_FIELD_NAMES if self.has_pre_period else FIELD_NAMES
        return {name: _plain(getattr(self, name)) for name in names}

    # --- derived quantities (ddof = 1, as in ABTEST_STATS.md §2.3) -------------------------

    @property
    def ctr(self):
        """R = Σc / Σm, the impression-weighted CTR of the bucket."""
        return np.divide(self.sum_c, self.sum_m)

    @property
    def mean_m(self):
        return np.divide(self.sum_m, self.n)

    @property
    def mean_c(self):
        return np.divide(self.sum_c, self.n)

    @property
    def var_c(self):
        return (self.sum_c2 - np.square(self.sum_c) / self.n) / (np.asarray(self.n) - 1)

    @property
    def var_m(self):
        return (self.sum_m2 - np.square(self.sum_m) / self.n) / (np.asarray(self.n) - 1)

    @property
    def cov_cm(self):
        return (self.sum_cm - self.sum_c * self.sum_m / self.n) / (np.asarray(self.n) - 1)

    @property
    def per_user_ratio_variance(self):
        """s²_e / m̄² with e_i = c_i − R·m_i: the per-user variance of the linearised CTR."""
        r = self.ctr
        return (self.var_c - 2.0 * r * self.cov_cm + r * r * self.var_m) / np.square(self.mean_m)

    @property
    def ratio_variance(self):
        """Delta-method Var(R) = (s²_c − 2R·s_cm + R²·s²_m) / (n·m̄²) (Deng et al. 2018)."""
        return self.per_user_ratio_variance / self.n


def _plain(value):
    """numpy scalars -> Python numbers (for JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def stats_by_group(group_codes, impressions, clicks, n_groups: int, pre_impressions=None,
                   pre_clicks=None) -> list[SufficientStats]:
    """Sufficient statistics per group from per-user arrays, without a Python loop over users.

    Args:
        group_codes: int array [n_users], values in [0, n_groups).
        impressions, clicks: arrays [n_users].
        n_groups: number of groups.
        pre_impressions, pre_clicks: the same users' pre-period arrays [n_users] (CUPED), or None.

    Returns:
        One ``SufficientStats`` per group code (n = 0 for empty groups).
    """
    g = np.asarray(group_codes, dtype=np.int64)
    m = np.asarray(impressions, dtype=np.float64)
    c = np.asarray(clicks, dtype=np.float64)
    products = [c, m, c * c, m * m, c * m]
    if (pre_impressions is None) != (pre_clicks is None):
        raise ValueError("give both pre_impressions and pre_clicks, or neither")
    if pre_impressions is not None:
        mp = np.asarray(pre_impressions, dtype=np.float64)
        cp = np.asarray(pre_clicks, dtype=np.float64)
        products += [cp, mp, cp * cp, mp * mp, cp * mp, c * cp, m * mp, c * mp, m * cp]
    counts = np.bincount(g, minlength=n_groups).astype(np.int64)
    sums = [np.bincount(g, weights=x, minlength=n_groups) for x in products]
    return [
        SufficientStats(int(counts[k]), *(float(s[k]) for s in sums)) for k in range(n_groups)
    ]


def stats_by_group_and_day(group_codes, impressions_by_day, clicks_by_day, n_groups: int,
                           cumulative: bool = True) -> list[list[SufficientStats]]:
    """Per-day sufficient statistics per group from per-user-per-day arrays (vectorised).

    Args:
        group_codes: int array [n_users].
        impressions_by_day, clicks_by_day: arrays [days, n_users].
        cumulative: statistics of each user's totals *through* day d (the cumulative-lift view and
            what the Beam job's ``.cumulative.csv`` holds); otherwise of that day's totals only.

    Returns:
        [days][n_groups] statistics over the users with at least one impression in the window
        (through day d, or on day d).
    """
    m = np.asarray(impressions_by_day, dtype=np.float64)
    c = np.asarray(clicks_by_day, dtype=np.float64)
    if cumulative:
        m, c = np.cumsum(m, axis=0), np.cumsum(c, axis=0)
    g = np.asarray(group_codes)
    result = []
    for day in range(m.shape[0]):  # days are few; users stay vectorised
        active = m[day] > 0
        result.append(stats_by_group(g[active], m[day, active], c[day, active], n_groups))
    return result
