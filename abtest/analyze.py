"""Analyse an A/B experiment from a CSV of per-user rows or per-bucket sufficient statistics.

The two input layouts and their reader are ``abtest.experiment_data``; the control, the
configured split and the testable-bucket checks ``abtest.split``; the JSON document
``abtest.report_json``. With pre-period data every comparison also carries the CUPED-adjusted
lift (``abtest.stats.cuped``). Every problem in the input raises ``adpush_core.errors.UserError``
naming the file, row and field; a bucket that cannot be tested (fewer than 2 users, no
impressions, a control without clicks, zero variance — gbstats' ``ZERO_NEGATIVE_VARIANCE`` /
``ZERO_NEGATIVE_BASELINE_VARIATION``) is named with the reason.
"""
from __future__ import annotations

from pathlib import Path

from abtest.experiment_data import read_experiment
from abtest.report_json import build_report_dict
from abtest.split import check_buckets, choose_control, parse_split
from abtest.stats import comparison as _comparison
from abtest.stats.inference import degenerate_reason
from adpush_core.errors import UserError


def analyze(input_path: str | Path, *, control: str | None = None, split: str | None = None,
            per_day_path: str | Path | None = None, alpha: float = _comparison.DEFAULT_ALPHA,
            ci_method: str = "delta", sequential: bool = False,
            practical_threshold: float = _comparison.DEFAULT_PRACTICAL_THRESHOLD, cuped: bool = True) -> dict:
    """Read, check and compare; returns the JSON-ready report dict with ``comparisons`` (one per
    treatment, each with the issue's keys first) and ``per_day`` (cumulative comparisons).

    Args:
        cuped: add the CUPED-adjusted figures when the input has pre-period data.
    """
    data = read_experiment(input_path)
    if per_day_path is not None:
        extra = read_experiment(per_day_path)
        if not extra.per_day:
            raise UserError(f"{per_day_path}: per-day statistics need a 'day' column")
        data.per_day = extra.per_day
    if not data.stats:
        raise UserError(f"{input_path}: per-day (cumulative) statistics only; pass them as --per-day and give "
                        f"overall statistics as --input")
    buckets = list(data.stats)
    control = choose_control(buckets, control, str(input_path))
    if len(buckets) < 2:
        raise UserError(f"{input_path}: only bucket {buckets} found; nothing to compare with")
    check_buckets(str(input_path), data.stats, control)
    weights = parse_split(split, buckets)
    options = dict(alpha=alpha, ci_method=ci_method, sequential_mode=sequential,
                   practical_threshold=practical_threshold, use_cuped=cuped)
    comparisons = _comparison.compare_all(data.stats, control, weights=weights, **options)
    per_day = []
    for day, day_stats in data.per_day.items():
        if control not in day_stats:
            continue
        # Early days may be too thin to test (few users, no clicks yet): those points are left out.
        usable = {k: s for k, s in day_stats.items() if degenerate_reason(s, control=k == control) is None}
        if control in usable and len(usable) > 1:
            per_day.extend(_comparison.compare_all(usable, control, weights=weights, day=day, **options))
    return build_report_dict(comparisons, per_day, stats=data.stats, weights=weights,
                             source=str(input_path))
