"""CI width of each A/B experiment with and without CUPED, and the variance reduction.

    python bench/cuped_ci_widths.py --run runs/<timestamp>      # after `make demo`
    python bench/cuped_ci_widths.py --report DIR/report.json    # any abtest report

Reads the report the abtest stage wrote (the experiments must have had a pre-period,
``[abtest] pre_days`` / ``adpush abtest run --pre-days N``) and prints, per experiment, the
unadjusted and CUPED-adjusted relative lift with its 95 % CI, both CI widths, their ratio and
the variance reduction 1 − Var(CUPED lift)/Var(lift).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="an adpush run directory (reads RUN/abtest/report.json)")
    source.add_argument("--report", type=Path, help="an abtest report.json")
    parser.add_argument("--seed", type=int, default=0, help="unused (the figures are read, not drawn)")
    args = parser.parse_args(argv)
    path = args.report or args.run / "abtest" / "report.json"
    comparisons = json.loads(path.read_text())["comparisons"]
    if not any(c.get("relative_lift_cuped") is not None for c in comparisons):
        print(f"{path}: no CUPED figures (the experiments had no pre-period)", file=sys.stderr)
        return 1
    print(f"{path} (pre-period days: {json.loads(path.read_text()).get('pre_days', '?')})")
    print(f"{'experiment':<22} {'lift [95% CI]':>26} {'width':>7}   {'CUPED lift [95% CI]':>26} {'width':>7} "
          f"{'ratio':>6} {'var. red.':>9} {'theta':>6}")
    for c in comparisons:
        def pct(x):
            return f"{100 * x:+.2f}"

        plain = c["ci_high"] - c["ci_low"]
        adjusted = c["ci_high_cuped"] - c["ci_low_cuped"]
        print(f"{c['treatment']:<22} {pct(c['relative_lift']) + '% [' + pct(c['ci_low']) + ', ' + pct(c['ci_high']) + ']':>26} "
              f"{100 * plain:>6.2f}pp {pct(c['relative_lift_cuped']) + '% [' + pct(c['ci_low_cuped']) + ', ' + pct(c['ci_high_cuped']) + ']':>26} "
              f"{100 * adjusted:>6.2f}pp {adjusted / plain:>6.3f} {100 * c['variance_reduction_cuped']:>8.1f}% "
              f"{c['theta_cuped']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
