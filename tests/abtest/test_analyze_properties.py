"""Property-based test of ``abtest analyze`` on hypothesis-generated per-user rows (issue 16).

Whatever the rows: no crash (only ``UserError``), a hostile edit is reported naming the row and
field (or the bucket/user), and a report that comes out conserves the counts of the input (users,
impressions, clicks per bucket), has p in [0, 1] and a p-value that agrees with its CI — for the
unadjusted and the CUPED figures.

Run with ``--hypothesis-show-statistics`` to see how many cases were generated and what they were.
"""
from __future__ import annotations

import csv
import math
import os
import tempfile
from collections import defaultdict

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from abtest import analyze
from adpush_core.errors import UserError

HOSTILE_CELLS = ("", "-1", "1.5", "x", "nan", "inf", "-inf", "1e400", "9" * 400, "0x10", "½", "٣", "NULL",
                 "1_000", "9007199254740993", "+", ".", "1e", "３")
#: Why a clean file (no hostile edit) may still be refused: too little to test.
DEGENERATE = ("user(s); at least 2", "has no clicks", "zero variance", "zero impressions",
              "need a control and at least one treatment", "only bucket")
#: The edits that break one cell name the row and the field.
CELL_EDITS = ("hostile_cell", "clicks_over_impressions", "pre_clicks_over_pre_impressions")


@st.composite
def experiments(draw):
    """(header, rows as text, edit): a clean per-user file, then at most one hostile edit."""
    buckets = ["control", "test", "other"][: draw(st.sampled_from((1, 2, 2, 3)))]
    with_day, with_pre = draw(st.booleans()), draw(st.booleans())
    header = ["bucket", "user"] + (["day"] if with_day else []) + ["impressions", "clicks"]
    header += ["pre_impressions", "pre_clicks"] if with_pre else []
    rows = []
    for user in range(draw(st.integers(1, 40))):
        bucket = draw(st.sampled_from(buckets))
        pre_m = draw(st.integers(0, 60))
        pre_c = draw(st.integers(0, pre_m))
        for day in range(draw(st.integers(1, 3)) if with_day else 1):
            m = draw(st.integers(0, 60))
            row = {"bucket": bucket, "user": f"u{user}", "day": str(day), "impressions": str(m),
                   "clicks": str(draw(st.integers(0, m))), "pre_impressions": str(pre_m), "pre_clicks": str(pre_c)}
            rows.append([row[name] for name in header])
    edit = draw(st.sampled_from(("none", "none", "hostile_cell", "clicks_over_impressions", "mixed_bucket",
                                 "unknown_column", "short_row", "pre_clicks_over_pre_impressions", "pre_differs")))
    i = draw(st.integers(0, len(rows) - 1))
    col = {name: k for k, name in enumerate(header)}
    if edit == "hostile_cell":
        rows[i][draw(st.sampled_from([k for k, name in enumerate(header) if name != "bucket" and name != "user"]))] = \
            draw(st.sampled_from(HOSTILE_CELLS))
    elif edit == "clicks_over_impressions":
        rows[i][col["clicks"]] = str(int(rows[i][col["impressions"]]) + draw(st.integers(1, 5)))
    elif edit == "mixed_bucket" and len(buckets) > 1:
        user = rows[i][col["user"]]
        rows.append(list(rows[i]))
        rows[-1][col["bucket"]] = next(b for b in buckets if b != rows[i][col["bucket"]])
        rows[-1][col["user"]] = user
    elif edit == "unknown_column":
        header = header + ["colour"]
        rows = [r + ["red"] for r in rows]
    elif edit == "short_row":
        rows[i] = rows[i][:-1]
    elif edit == "pre_clicks_over_pre_impressions" and with_pre:
        rows[i][col["pre_clicks"]] = str(int(rows[i][col["pre_impressions"]]) + 1)
    elif edit == "pre_differs" and with_pre and with_day:
        rows.append(list(rows[i]))
        rows[-1][col["day"]] = "7"
        rows[-1][col["pre_impressions"]] = str(int(rows[i][col["pre_impressions"]]) + 1)
        rows[-1][col["pre_clicks"]] = "0"
    else:
        edit = "none"
    return header, rows, edit


def _expected_totals(header, rows):
    col = {name: k for k, name in enumerate(header)}
    users, impressions, clicks = defaultdict(set), defaultdict(float), defaultdict(float)
    for row in rows:
        bucket = row[col["bucket"]]
        users[bucket].add(row[col["user"]])
        impressions[bucket] += float(row[col["impressions"]])
        clicks[bucket] += float(row[col["clicks"]])
    return users, impressions, clicks


def _agrees(p, low, high, alpha=0.05):
    return (p < alpha) == (low > 0 or high < 0)


# Random exploration locally (``--hypothesis-seed=N`` to vary it); the same 400 cases in CI.
@settings(max_examples=400, deadline=None, derandomize=bool(os.environ.get("CI")),
          suppress_health_check=[HealthCheck.too_slow])
@given(experiments())
def test_analyze_never_crashes_and_conserves_counts(case):
    header, rows, edit = case
    event(f"edit: {edit}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        try:
            report = analyze.analyze(path)
        except UserError as err:
            message = str(err)
            event("refused" if edit != "none" else "refused: too little to test")
            assert message.startswith(path), message
            if edit == "none":
                assert any(reason in message for reason in DEGENERATE), message
            elif edit in CELL_EDITS:
                assert "row " in message, message
            elif edit == "mixed_bucket":
                assert "appears in buckets" in message
            return
    event("analysed")
    assert edit == "none", f"{edit} was not refused"
    users, impressions, clicks = _expected_totals(header, rows)
    for c in report["comparisons"]:
        for role in ("control", "treatment"):
            bucket = c[role]
            assert c[f"users_{role}"] == len(users[bucket])
            assert c[f"impressions_{role}"] == impressions[bucket]
            assert c[f"clicks_{role}"] == clicks[bucket]
        assert 0 <= c["p_value"] <= 1 and c["ci_low"] <= c["relative_lift"] <= c["ci_high"]
        assert _agrees(c["p_value"], c["ci_low"], c["ci_high"])
        if "pre_impressions" in header:
            lift, low, high = c["relative_lift_cuped"], c["ci_low_cuped"], c["ci_high_cuped"]
            assert lift is not None and 0 <= c["p_value_cuped"] <= 1 and low <= lift <= high
            assert _agrees(c["p_value_cuped"], low, high)
            assert math.isfinite(c["variance_reduction_cuped"])
        else:
            assert c["relative_lift_cuped"] is None
    assert sum(b["n"] for b in report["buckets"].values()) == len(set().union(*users.values()))
