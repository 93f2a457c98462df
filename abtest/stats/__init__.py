"""User-level statistics for CTR A/B tests (formulas and anchors: ../shared/ABTEST_STATS.md).

Modules: ``sufficient`` (per-bucket sufficient statistics), ``inference`` (delta-method and naive
tests, lift CIs), ``srm``, ``power``, ``multiple`` (Holm, BH), ``sequential`` (confidence
sequences), ``comparison`` (one report row from two buckets).
"""
from abtest.stats.comparison import Comparison, compare, compare_all, with_adjusted_p_values
from abtest.stats.sufficient import SufficientStats, stats_by_group, stats_by_group_and_day

__all__ = ["Comparison", "SufficientStats", "compare", "compare_all", "stats_by_group", "stats_by_group_and_day",
           "with_adjusted_p_values"]
