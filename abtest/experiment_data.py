"""An A/B experiment's data from a CSV of per-user rows or per-bucket sufficient statistics.

Two input layouts (header line required, detected from it):

* per-user rows ``bucket,user,impressions,clicks`` with an optional ``day`` column; a user may have
  several rows (e.g. one per day), which are summed; a user must stay in one bucket. Optional
  ``pre_impressions,pre_clicks`` (both or neither) are the user's pre-experiment traffic, the
  CUPED covariates; a user with several rows repeats the same pre-period values on each.
* per-bucket sufficient statistics ``bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm`` (what
  ``adpush abtest aggregate`` writes), optionally with the nine pre-period sums
  ``sum_c_pre,…,sum_m_c_pre`` (``abtest.stats.sufficient.PRE_FIELD_NAMES``, all or none). With an
  extra ``day`` column each row holds the statistics of the users' totals *through* that day
  (the cumulative file of ``aggregate``); such a file is passed as ``per_day``.

Every problem in the input raises ``adpush_core.errors.UserError`` naming the file, row and field.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abtest.stats.sufficient import FIELD_NAMES, PRE_FIELD_NAMES, SufficientStats, stats_by_group
from adpush_core.errors import UserError

USER_COLUMNS = ("bucket", "user", "impressions", "clicks")
USER_PRE_COLUMNS = ("pre_impressions", "pre_clicks")
STATS_COLUMNS = ("bucket",) + FIELD_NAMES
OPTIONAL_COLUMNS = ("day",)


@dataclass
class ExperimentData:
    """Sufficient statistics per bucket (file order), and optionally cumulative ones per day."""

    stats: dict[str, SufficientStats]
    per_day: dict[int, dict[str, SufficientStats]] = field(default_factory=dict)


# --- reading -----------------------------------------------------------------------------------

def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except FileNotFoundError as err:
        raise UserError(f"{path}: no such file") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from err
    if not header:
        raise UserError(f"{path}: empty file (a header line is required)")
    header = [name.strip() for name in header]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"{path}: row {number} has {len(row)} fields, the header has {len(header)}")
    if not rows:
        raise UserError(f"{path}: no data rows")
    return header, rows


def _layout(path: Path, header: list[str]) -> str:
    columns = set(header)
    if len(columns) != len(header):
        raise UserError(f"{path}: duplicate column in header {header}")
    for layout, required, pre in (("users", USER_COLUMNS, USER_PRE_COLUMNS),
                                  ("stats", STATS_COLUMNS, PRE_FIELD_NAMES)):
        if set(required) <= columns:
            unknown = columns - set(required) - set(OPTIONAL_COLUMNS) - set(pre)
            if unknown:
                raise UserError(f"{path}: unknown column(s) {sorted(unknown)}; expected {','.join(required)}"
                                f" (+ optional day, and the pre-period columns {','.join(pre)})")
            present = [name for name in pre if name in columns]
            if present and len(present) != len(pre):
                missing = [name for name in pre if name not in columns]
                raise UserError(f"{path}: pre-period column(s) {present} without {missing}; give all of "
                                f"{','.join(pre)} or none")
            return layout
    known = set(USER_COLUMNS) | set(STATS_COLUMNS) | set(OPTIONAL_COLUMNS) | set(USER_PRE_COLUMNS) \
        | set(PRE_FIELD_NAMES)
    unknown = columns - known
    hint = f"unknown column(s) {sorted(unknown)}; " if unknown else ""
    raise UserError(f"{path}: {hint}expected per-user columns {','.join(USER_COLUMNS)} or sufficient "
                    f"statistics {','.join(STATS_COLUMNS)}, got {','.join(header)}")


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EXACT_INTEGER = 2.0**53


def _numeric_column(path: Path, header: list[str], rows: list[list[str]], name: str,
                    integer: bool = True) -> np.ndarray:
    idx = header.index(name)
    raw = [row[idx].strip() for row in rows]
    bad = None
    values = None
    for number, text in enumerate(raw, start=2):
        if not _NUMBER.fullmatch(text):  # plain ASCII decimals only: no "nan", "0x10", "٣", "1_000"
            bad = (number, text, "is not a number")
            break
    else:
        values = np.array(raw, dtype=np.float64)
        checks = [(~np.isfinite(values), "is not a finite number"), (values < 0, "is negative")]
        if integer:
            checks.append((values != np.round(values), "is not an integer"))
            checks.append((values >= _EXACT_INTEGER, "is too large to be counted exactly (2^53 or more)"))
        for mask, reason in checks:
            if mask.any():
                i = int(np.argmax(mask))
                bad = (i + 2, raw[i], reason)
                break
    if bad:
        number, text, reason = bad
        raise UserError(f"{path}: row {number}: field {name!r} = {text!r} {reason}")
    return values


def _bucket_codes(path: Path, header: list[str], rows: list[list[str]]) -> tuple[list[str], np.ndarray]:
    idx = header.index("bucket")
    names = [row[idx].strip() for row in rows]
    for number, name in enumerate(names, start=2):
        if not name:
            raise UserError(f"{path}: row {number}: field 'bucket' is empty")
    order = list(dict.fromkeys(names))  # file order
    lookup = {name: k for k, name in enumerate(order)}
    return order, np.array([lookup[name] for name in names], dtype=np.int64)


def _check_rows_clicks(path: Path, clicks: np.ndarray, impressions: np.ndarray, clicks_name: str,
                       impressions_name: str) -> None:
    over = clicks > impressions
    if over.any():
        i = int(np.argmax(over))
        raise UserError(f"{path}: row {i + 2}: {clicks_name} = {clicks[i]:g} exceeds "
                        f"{impressions_name} = {impressions[i]:g}")


def _from_user_rows(path: Path, header: list[str], rows: list[list[str]]) -> ExperimentData:
    buckets, bucket_code = _bucket_codes(path, header, rows)
    impressions = _numeric_column(path, header, rows, "impressions")
    clicks = _numeric_column(path, header, rows, "clicks")
    _check_rows_clicks(path, clicks, impressions, "clicks", "impressions")
    user_idx = header.index("user")
    user_names, user_code = np.unique(np.array([row[user_idx].strip() for row in rows]), return_inverse=True)
    n_users = user_names.size
    # A user belongs to exactly one bucket (randomisation unit).
    low = np.full(n_users, np.iinfo(np.int64).max)
    high = np.full(n_users, -1)
    np.minimum.at(low, user_code, bucket_code)
    np.maximum.at(high, user_code, bucket_code)
    mixed = np.nonzero(low != high)[0]
    if mixed.size:
        user = str(user_names[mixed[0]])
        rows_of_user = np.nonzero(user_code == mixed[0])[0]
        seen = sorted({buckets[bucket_code[r]] for r in rows_of_user})
        raise UserError(f"{path}: user {user!r} appears in buckets {seen} (rows "
                        f"{', '.join(str(r + 2) for r in rows_of_user[:5])}); a user must stay in one bucket")
    user_bucket = low
    pre = _user_pre_period(path, header, rows, user_code, user_names) if "pre_impressions" in header else None

    def totals(mask: np.ndarray | None) -> dict[str, SufficientStats]:
        sel = slice(None) if mask is None else mask
        m = np.bincount(user_code[sel], weights=impressions[sel], minlength=n_users)
        c = np.bincount(user_code[sel], weights=clicks[sel], minlength=n_users)
        present = np.bincount(user_code[sel], minlength=n_users) > 0
        extra = {} if pre is None else {"pre_impressions": pre[0][present], "pre_clicks": pre[1][present]}
        per_bucket = stats_by_group(user_bucket[present], m[present], c[present], len(buckets), **extra)
        return dict(zip(buckets, per_bucket))

    data = ExperimentData(stats=totals(None))
    if "day" in header:
        day = _numeric_column(path, header, rows, "day").astype(np.int64)
        for d in np.unique(day):
            data.per_day[int(d)] = totals(day <= d)
    return data


def _user_pre_period(path: Path, header: list[str], rows: list[list[str]], user_code: np.ndarray,
                     user_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (pre_impressions, pre_clicks), checked to be the same on every row of a user."""
    pre_m = _numeric_column(path, header, rows, "pre_impressions")
    pre_c = _numeric_column(path, header, rows, "pre_clicks")
    _check_rows_clicks(path, pre_c, pre_m, "pre_clicks", "pre_impressions")
    n_users = user_names.size
    per_user = []
    for values, name in ((pre_m, "pre_impressions"), (pre_c, "pre_clicks")):
        low = np.full(n_users, np.inf)
        high = np.full(n_users, -np.inf)
        np.minimum.at(low, user_code, values)
        np.maximum.at(high, user_code, values)
        differs = np.nonzero(low != high)[0]
        if differs.size:
            rows_of_user = np.nonzero(user_code == differs[0])[0]
            raise UserError(f"{path}: user {str(user_names[differs[0]])!r} has different {name} on rows "
                            f"{', '.join(str(r + 2) for r in rows_of_user[:5])}; the pre-period is one value "
                            f"per user (repeat it on each of the user's rows)")
        per_user.append(low)
    return per_user[0], per_user[1]


def _from_stats_rows(path: Path, header: list[str], rows: list[list[str]]) -> ExperimentData:
    buckets, bucket_code = _bucket_codes(path, header, rows)
    names = FIELD_NAMES + (PRE_FIELD_NAMES if PRE_FIELD_NAMES[0] in header else ())
    columns = {name: _numeric_column(path, header, rows, name, integer=name == "n") for name in names}
    _check_rows_clicks(path, columns["sum_c"], columns["sum_m"], "sum_c", "sum_m")
    if "sum_c_pre" in columns:
        _check_rows_clicks(path, columns["sum_c_pre"], columns["sum_m_pre"], "sum_c_pre", "sum_m_pre")
    n = np.maximum(columns["n"], 1)
    tolerance = 1e-9
    squares = [("sum_c2", "sum_c", "c"), ("sum_m2", "sum_m", "m")]
    if "sum_c_pre" in columns:
        squares += [("sum_c_pre2", "sum_c_pre", "pre-period c"), ("sum_m_pre2", "sum_m_pre", "pre-period m")]
    for square, total, name in squares:
        # Σx² ≥ (Σx)²/n, else the variance of x would be negative.
        short = columns[square] < columns[total] ** 2 / n * (1 - tolerance) - tolerance
        if short.any():
            i = int(np.argmax(short))
            raise UserError(f"{path}: row {i + 2}: {square} = {columns[square][i]:g} is smaller than "
                            f"{total}²/n = {columns[total][i] ** 2 / n[i]:g}, impossible for per-user {name}")
    day = _numeric_column(path, header, rows, "day").astype(np.int64) if "day" in header else None
    keys = list(zip(bucket_code.tolist(), day.tolist() if day is not None else [None] * len(rows)))
    seen: dict = {}
    for number, key in enumerate(keys, start=2):
        if key in seen:
            what = f"bucket {buckets[key[0]]!r}" + (f", day {key[1]}" if key[1] is not None else "")
            raise UserError(f"{path}: row {number} repeats {what} (first at row {seen[key]})")
        seen[key] = number
    per_row = [SufficientStats(int(columns["n"][i]), *(float(columns[f][i]) for f in names[1:]))
               for i in range(len(rows))]
    if day is None:
        return ExperimentData(stats={buckets[k]: s for (k, _), s in zip(keys, per_row)})
    data = ExperimentData(stats={})
    for (k, d), s in zip(keys, per_row):
        data.per_day.setdefault(int(d), {})[buckets[k]] = s
    data.per_day = dict(sorted(data.per_day.items()))
    return data


def read_experiment(path: str | Path) -> ExperimentData:
    """Read either input layout into per-bucket sufficient statistics."""
    path = Path(path)
    header, rows = _read_csv(path)
    if _layout(path, header) == "users":
        return _from_user_rows(path, header, rows)
    return _from_stats_rows(path, header, rows)
