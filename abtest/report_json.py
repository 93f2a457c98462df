"""The JSON document of an analysis: per-bucket statistics, weights, SRM, comparisons, per day."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from abtest.stats import comparison as _comparison
from abtest.stats import srm
from abtest.stats.sufficient import SufficientStats


def build_report_dict(comparisons: Sequence[_comparison.Comparison],
                      per_day: Sequence[_comparison.Comparison] = (), *,
                      stats: Mapping[str, SufficientStats] | None = None,
                      weights: Mapping[str, float] | None = None, source: str | None = None) -> dict:
    """The JSON document shared by ``analyze`` and ``report.write_report``."""
    report: dict = {"source": source}
    if stats:
        report["buckets"] = {name: s.to_dict() for name, s in stats.items()}
        names = list(stats)
        w = [float((weights or {}).get(name, 1.0)) for name in names]
        report["weights"] = dict(zip(names, w))
        report["srm_p_all_buckets"] = srm.srm_p_value([stats[n].n for n in names], w) if len(names) > 1 else None
    report["comparisons"] = [c.to_dict() for c in comparisons]
    report["per_day"] = [c.to_dict() for c in per_day]
    return report


def write_json(report: dict, out: str | Path) -> Path:
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return out
