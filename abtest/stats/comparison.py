"""One control-vs-treatment comparison: every figure a report row needs, from two buckets'
sufficient statistics.

``compare`` is what both ``adpush abtest analyze`` and the traffic simulator call; ``compare_all``
adds the Holm and Benjamini–Hochberg adjusted p-values across the comparisons of one report.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from abtest.stats import cuped, inference, multiple, power, sequential, srm
from abtest.stats.sufficient import SufficientStats

DEFAULT_ALPHA = 0.05
#: 001 (Table 2 text): "an increase in CTR above 0.3% is considered a significant increase".
DEFAULT_PRACTICAL_THRESHOLD = 0.003

#: The keys the issue fixes for every comparison in ``analyze``'s JSON, in order.
REPORT_KEYS = (
    "control", "treatment", "users_control", "users_treatment", "impressions_control",
    "impressions_treatment", "clicks_control", "clicks_treatment", "ctr_control", "ctr_treatment",
    "relative_lift", "ci_low", "ci_high", "p_value", "p_value_naive", "srm_p", "mde",
)


class DegenerateComparison(ValueError):
    """A bucket cannot be tested (too few users, no impressions, a control without clicks, zero
    variance); the message names the bucket and the reason."""


def check_testable(control_name: str, control: SufficientStats, treatment_name: str,
                   treatment: SufficientStats) -> None:
    """Raise ``DegenerateComparison`` when either bucket cannot enter the lift test."""
    for name, stats, is_control in ((control_name, control, True), (treatment_name, treatment, False)):
        reason = inference.degenerate_reason(stats, control=is_control)
        if reason:
            role = "control" if is_control else "treatment"
            raise DegenerateComparison(f"{role} bucket {name!r} {reason}")


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a treatment bucket with a control bucket (relative figures as
    fractions: 0.05 = +5 %)."""

    control: str
    treatment: str
    users_control: int
    users_treatment: int
    impressions_control: float
    impressions_treatment: float
    clicks_control: float
    clicks_treatment: float
    ctr_control: float
    ctr_treatment: float
    relative_lift: float
    ci_low: float
    ci_high: float
    p_value: float
    p_value_naive: float
    srm_p: float
    mde: float
    abs_diff: float = math.nan
    se_diff: float = math.nan
    se_lift: float = math.nan
    design_effect: float = math.nan
    ci_method: str = "delta"
    test_statistic: str = inference.LIFT_TEST_STATISTICS["delta"]
    alpha: float = DEFAULT_ALPHA
    power: float = power.DEFAULT_POWER
    practical_threshold: float = DEFAULT_PRACTICAL_THRESHOLD
    srm_flag: bool = False
    significant: bool = False
    significant_practical: bool = False
    p_value_holm: float | None = None
    p_value_bh: float | None = None
    sequential: bool = False
    p_value_sequential: float | None = None
    ci_low_sequential: float | None = None
    ci_high_sequential: float | None = None
    day: int | None = None
    # CUPED (abtest.stats.cuped), when both buckets carry pre-period statistics.
    relative_lift_cuped: float | None = None
    ci_low_cuped: float | None = None
    ci_high_cuped: float | None = None
    p_value_cuped: float | None = None
    se_lift_cuped: float | None = None
    theta_cuped: float | None = None
    variance_reduction_cuped: float | None = None
    significant_cuped: bool | None = None

    @property
    def displays(self) -> float:
        return self.impressions_control + self.impressions_treatment

    def to_dict(self) -> dict:
        """JSON-ready dict (non-finite numbers become None)."""
        return {key: _json_number(value) for key, value in asdict(self).items()}


def _json_number(value):
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def compare(control_name: str, control: SufficientStats, treatment_name: str, treatment: SufficientStats,
            *, split: Sequence[float] = (1.0, 1.0), alpha: float = DEFAULT_ALPHA,
            ci_method: str = "delta", power_target: float = power.DEFAULT_POWER,
            practical_threshold: float = DEFAULT_PRACTICAL_THRESHOLD, sequential_mode: bool = False,
            sequential_tuning: float = sequential.DEFAULT_TUNING, day: int | None = None,
            use_cuped: bool = True) -> Comparison:
    """Compare two buckets.

    The p-value and the lift CI come from one statistic (``inference.lift_test``), so
    ``significant`` (p < α) holds exactly when the CI excludes 0.

    Args:
        control, treatment: per-user sufficient statistics of each bucket (scalars).
        split: configured traffic weights of (control, treatment) for the SRM check.
        ci_method: lift CI and its test, ``delta`` | ``log`` | ``fieller``.
        practical_threshold: relative lift that matters in practice; ``significant_practical``
            means the whole lift CI lies above it.
        sequential_mode: also compute the always-valid p-value and confidence sequence for L.
        day: set for a cumulative-through-``day`` comparison (report time series).
        use_cuped: add the CUPED-adjusted figures when both buckets have pre-period statistics.

    Raises:
        DegenerateComparison: a bucket cannot be tested (see ``inference.degenerate_reason``).
    """
    check_testable(control_name, control, treatment_name, treatment)
    delta = inference.delta_method_test(control, treatment)
    naive = inference.naive_ztest(control, treatment)
    test = inference.lift_test(control, treatment, alpha, ci_method)
    lift = float(test.lift)
    ci_low, ci_high = float(test.ci_low), float(test.ci_high)
    se_lift = float(inference.lift_se(control, treatment))
    srm_p = srm.srm_p_value([control.n, treatment.n], split)
    p_value = float(test.p_value)
    result = Comparison(
        control=control_name, treatment=treatment_name,
        users_control=int(control.n), users_treatment=int(treatment.n),
        impressions_control=float(control.sum_m), impressions_treatment=float(treatment.sum_m),
        clicks_control=float(control.sum_c), clicks_treatment=float(treatment.sum_c),
        ctr_control=float(control.ctr), ctr_treatment=float(treatment.ctr),
        relative_lift=lift, ci_low=ci_low, ci_high=ci_high,
        p_value=p_value, p_value_naive=float(naive.p_value), srm_p=srm_p,
        mde=float(power.minimum_detectable_effect(delta.se, control.ctr, alpha, power_target)),
        abs_diff=float(delta.diff), se_diff=float(delta.se), se_lift=se_lift,
        design_effect=float(inference.design_effect(control, treatment)),
        ci_method=ci_method, test_statistic=inference.LIFT_TEST_STATISTICS[ci_method], alpha=alpha,
        power=power_target, practical_threshold=practical_threshold,
        srm_flag=srm.srm_flag(srm_p), significant=bool(p_value < alpha),
        significant_practical=bool(p_value < alpha and ci_low > practical_threshold), day=day,
    )
    if use_cuped and control.has_pre_period and treatment.has_pre_period:
        adjusted = cuped.adjusted_lift(control, treatment, alpha)
        result = replace(
            result, relative_lift_cuped=float(adjusted.lift), ci_low_cuped=float(adjusted.ci_low),
            ci_high_cuped=float(adjusted.ci_high), p_value_cuped=float(adjusted.p_value),
            se_lift_cuped=float(adjusted.se), theta_cuped=float(adjusted.theta),
            variance_reduction_cuped=float(adjusted.variance_reduction),
            significant_cuped=bool(adjusted.p_value < alpha))
    if sequential_mode:
        n_total = control.n + treatment.n
        half = float(sequential.sequential_halfwidth(se_lift, n_total, alpha, sequential_tuning))
        result = replace(
            result, sequential=True,
            p_value_sequential=float(sequential.sequential_p_value(lift, se_lift, n_total, alpha, sequential_tuning)),
            ci_low_sequential=lift - half, ci_high_sequential=lift + half,
        )
    return result


def with_adjusted_p_values(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Add Holm and BH adjusted p-values (of the delta-method p) across these comparisons."""
    if not comparisons:
        return []
    p = np.array([c.p_value for c in comparisons])
    holm, bh = multiple.holm(p), multiple.benjamini_hochberg(p)
    return [replace(c, p_value_holm=float(h), p_value_bh=float(b)) for c, h, b in zip(comparisons, holm, bh)]


def compare_all(stats: Mapping[str, SufficientStats], control: str, *,
                weights: Mapping[str, float] | None = None, **kwargs) -> list[Comparison]:
    """Every other bucket against ``control``, with adjusted p-values across them.

    Args:
        stats: bucket name -> sufficient statistics (insertion order = report order).
        weights: bucket name -> configured traffic weight (equal when omitted).
        **kwargs: passed to ``compare``.
    """
    weights = weights or {}
    comparisons = [
        compare(control, stats[control], name, s,
                split=(weights.get(control, 1.0), weights.get(name, 1.0)), **kwargs)
        for name, s in stats.items() if name != control
    ]
    return with_adjusted_p_values(comparisons)
