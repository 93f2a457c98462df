"""Beam job: impression logs -> per-bucket sufficient statistics of per-user clicks and impressions.

Input: CSV text files with header ``user,bucket,day,impressions,clicks`` (one row per user-day,
or per impression with impressions = 1). Optional ``--pre-input``: the same users' pre-experiment
logs, header ``user,day,impressions,clicks`` (no bucket: the experiment had not started), summed
per user and joined to the experiment's users by ``user`` (a user without pre-period rows has
0, 0; pre-period users who never entered the experiment are counted and dropped). Output, next to
``--out``:

* ``OUT`` — ``bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm`` over each user's total (the input of
  ``adpush abtest analyze``), plus the nine CUPED sums ``sum_c_pre,…,sum_m_c_pre``
  (``abtest.stats.sufficient.PRE_FIELD_NAMES``) with ``--pre-input``;
* ``OUT_STEM.daily.csv`` — ``bucket,day,n,…`` over each user's totals of that day;
* ``OUT_STEM.cumulative.csv`` — ``bucket,day,n,…`` over each user's totals *through* that day
  (users active on or before it; ``analyze --per-day``, the cumulative-lift plot);
* ``OUT_STEM.rejected.jsonl`` — rows that failed validation, with the reason (dead letter), and
  users logged in more than one bucket (reason ``user_in_several_buckets``).

Counters: ``rows_read``, ``rows_rejected_<reason>``, ``users``, ``users_in_several_buckets``; with a
pre-period ``pre_rows_read``, ``pre_rows_rejected_<reason>``, ``pre_users``,
``pre_users_not_in_experiment``. Runs on FnApiRunner by default
(BEAM_NOTES.md §1) and unchanged on Dataflow (``--runner=DataflowRunner … --setup_file ./setup.py``).
Statistics: ABTEST_STATS.md §2.3 (sufficient statistics as gbstats / Eppo consume them).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import PurePosixPath
from typing import Iterable

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from abtest.stats.sufficient import ALL_FIELD_NAMES, FIELD_NAMES, SufficientStats

NAMESPACE = "ab_sufficient_stats"
INPUT_COLUMNS = ("user", "bucket", "day", "impressions", "clicks")
PRE_INPUT_COLUMNS = ("user", "day", "impressions", "clicks")
REJECTED = "rejected"


class _ParseLogLineFn(beam.DoFn):
    """CSV line -> (user, bucket, day, impressions, clicks); bad rows to the ``rejected`` output.

    With ``pre_period=True`` the lines are ``user,day,impressions,clicks`` and the records
    ``(user, day, impressions, clicks)``; counters and dead letters are prefixed ``pre_``.
    """

    def __init__(self, pre_period: bool = False):
        self.pre_period = pre_period
        self.prefix = "pre_" if pre_period else ""
        self.rows_read = Metrics.counter(NAMESPACE, f"{self.prefix}rows_read")

    def process(self, line: str):
        self.rows_read.inc()
        if not line.strip():
            return
        fields = [f.strip() for f in line.split(",")]
        columns = PRE_INPUT_COLUMNS if self.pre_period else INPUT_COLUMNS
        ids = 1 if self.pre_period else 2
        reason = None
        if len(fields) != len(columns):
            reason = "field_count"
        else:
            try:
                day, impressions, clicks = (int(f) for f in fields[ids:])
            except ValueError:
                reason = "not_an_integer"
            else:
                if not all(fields[:ids]):
                    reason = "empty_id"
                elif day < 0 or impressions < 0 or clicks < 0:
                    reason = "negative"
                elif clicks > impressions:
                    reason = "clicks_exceed_impressions"
        if reason:
            Metrics.counter(NAMESPACE, f"{self.prefix}rows_rejected_{reason}").inc()
            letter = {"line": line, "reason": reason}
            if self.pre_period:
                letter["input"] = "pre_period"
            yield pvalue.TaggedOutput(REJECTED, json.dumps(letter))
            return
        yield (*fields[:ids], day, impressions, clicks)


class ParseImpressionLogs(beam.PTransform):
    """Lines (header excluded) -> records, with tagged output ``rejected`` (JSON lines).

    ``pre_period=True`` parses the pre-period layout ``user,day,impressions,clicks``."""

    def __init__(self, pre_period: bool = False, label: str | None = None):
        super().__init__(label)
        self.pre_period = pre_period

    def expand(self, lines):
        return lines | "Parse" >> beam.ParDo(_ParseLogLineFn(self.pre_period)).with_outputs(REJECTED, main="records")


def _sum_pairs(pairs: Iterable[tuple[int, int]]) -> tuple[int, int]:
    m = c = 0
    for pm, pc in pairs:
        m += pm
        c += pc
    return m, c


class ComputeUserTotals(beam.PTransform):
    """Records -> ((bucket, user), (impressions, clicks)) summed over the user's rows, or with
    ``per_day=True`` -> ((bucket, day, user), (impressions, clicks)) per user-day."""

    def __init__(self, per_day: bool = False, label: str | None = None):
        super().__init__(label)
        self.per_day = per_day

    def expand(self, records):
        if self.per_day:
            keyed = records | "KeyByBucketDayUser" >> beam.Map(lambda r: ((r[1], r[2], r[0]), (r[3], r[4])))
        else:
            keyed = records | "KeyByBucketUser" >> beam.Map(lambda r: ((r[1], r[0]), (r[3], r[4])))
        return keyed | "SumPerUser" >> beam.CombinePerKey(_sum_pairs)


class _SufficientStatsFn(beam.CombineFn):
    """(impressions, clicks) of each user -> [n, Σc, Σm, Σc², Σm², Σcm]; with
    (impressions, clicks, pre_impressions, pre_clicks) also the nine pre-period sums, in
    ``ALL_FIELD_NAMES`` order."""

    def __init__(self, pre_period: bool = False):
        self.size = len(ALL_FIELD_NAMES if pre_period else FIELD_NAMES)

    def create_accumulator(self):
        return [0] * self.size

    def add_input(self, acc, user_total):
        m, c = user_total[0], user_total[1]
        values = [1, c, m, c * c, m * m, c * m]
        if self.size > 6:
            mp, cp = user_total[2], user_total[3]
            values += [cp, mp, cp * cp, mp * mp, cp * mp, c * cp, m * mp, c * mp, m * cp]
        for i, value in enumerate(values):
            acc[i] += value
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            for i, value in enumerate(acc):
                merged[i] += value
        return merged

    def extract_output(self, acc):
        return SufficientStats(*acc)


class ComputeBucketSufficientStats(beam.PTransform):
    """((group…, user), (impressions, clicks[, pre_impressions, pre_clicks])) -> (group,
    SufficientStats), where group is the key without the user: ``bucket`` for overall totals,
    ``(bucket, day)`` for per-day ones. ``pre_period=True`` when the values carry the pre-period."""

    def __init__(self, pre_period: bool = False, label: str | None = None):
        super().__init__(label)
        self.pre_period = pre_period

    def expand(self, user_totals):
        def drop_user(kv):
            key, value = kv
            group = key[:-1]
            return (group[0] if len(group) == 1 else group), value

        return (user_totals
                | "DropUser" >> beam.Map(drop_user)
                | "SufficientStats" >> beam.CombinePerKey(_SufficientStatsFn(self.pre_period)))


class ComputePreUserTotals(beam.PTransform):
    """Pre-period records (user, day, impressions, clicks) -> (user, (impressions, clicks))."""

    def expand(self, records):
        return (records
                | "KeyByUser" >> beam.Map(lambda r: (r[0], (r[2], r[3])))
                | "SumPerUser" >> beam.CombinePerKey(_sum_pairs))


class _AttachPrePeriodFn(beam.DoFn):
    """(user, {"experiment": [(key, (m, c)), …], "pre": [(m', c')]}) -> (key, (m, c, m', c'))."""

    def __init__(self):
        self.pre_users = Metrics.counter(NAMESPACE, "pre_users")
        self.unmatched = Metrics.counter(NAMESPACE, "pre_users_not_in_experiment")

    def process(self, element, count: bool):
        _user, grouped = element
        pre = list(grouped["pre"])
        m_pre, c_pre = pre[0] if pre else (0, 0)  # ComputePreUserTotals: at most one per user
        experiment = list(grouped["experiment"])
        if count and pre:
            (self.pre_users if experiment else self.unmatched).inc()
        for key, (m, c) in experiment:
            yield key, (m, c, m_pre, c_pre)


class AttachPrePeriod(beam.PTransform):
    """Join ((…, user), (m, c)) with the pre-period totals (user, (m', c')) on the user:
    -> ((…, user), (m, c, m', c')), with (0, 0) for users without pre-period traffic.

    Args:
        pre_totals: the output of ``ComputePreUserTotals``.
        count: increment the ``pre_users`` / ``pre_users_not_in_experiment`` counters (set it
            on one of the joins only).
    """

    def __init__(self, pre_totals, count: bool = False, label: str | None = None):
        super().__init__(label)
        self.pre_totals, self.count = pre_totals, count

    def expand(self, user_totals):
        keyed = user_totals | "KeyByUser" >> beam.Map(lambda kv: (kv[0][-1], kv))
        return ({"experiment": keyed, "pre": self.pre_totals}
                | "JoinOnUser" >> beam.CoGroupByKey()
                | "Attach" >> beam.ParDo(_AttachPrePeriodFn(), count=self.count))


class _CumulativeTotalsFn(beam.DoFn):
    """((bucket, user), [(day, m, c), …]) -> ((bucket, day, user), totals through day) for every
    day of the experiment on or after the user's first day."""

    def process(self, element, days):
        (bucket, user), rows = element
        per_day: dict[int, list[int]] = {}
        for day, m, c in rows:
            total = per_day.setdefault(day, [0, 0])
            total[0] += m
            total[1] += c
        first = min(per_day)
        m_cum = c_cum = 0
        for day in sorted(days):
            if day < first:
                continue
            if day in per_day:
                m_cum += per_day[day][0]
                c_cum += per_day[day][1]
            yield (bucket, day, user), (m_cum, c_cum)


class ComputeCumulativeDailyStats(beam.PTransform):
    """Records -> ((bucket, day), SufficientStats) of users' totals through each day (with the
    pre-period sums when ``pre_totals`` is given)."""

    def __init__(self, pre_totals=None, label: str | None = None):
        super().__init__(label)
        self.pre_totals = pre_totals

    def expand(self, records):
        days = (records
                | "Days" >> beam.Map(lambda r: r[2])
                | "DistinctDays" >> beam.Distinct())
        cumulative = (records
                      | "KeyByUser" >> beam.Map(lambda r: ((r[1], r[0]), (r[2], r[3], r[4])))
                      | "GroupByUser" >> beam.GroupByKey()
                      | "Cumulate" >> beam.ParDo(_CumulativeTotalsFn(), days=beam.pvalue.AsList(days)))
        if self.pre_totals is not None:
            cumulative = cumulative | "PrePeriod" >> AttachPrePeriod(self.pre_totals)
        return cumulative | "Stats" >> ComputeBucketSufficientStats(pre_period=self.pre_totals is not None)


class _FlagMixedUsersFn(beam.DoFn):
    """(user, buckets) -> a JSON line when a user was logged in more than one bucket."""

    def __init__(self):
        self.mixed = Metrics.counter(NAMESPACE, "users_in_several_buckets")

    def process(self, element):
        user, buckets = element
        buckets = sorted(set(buckets))
        if len(buckets) > 1:
            self.mixed.inc()
            yield json.dumps({"user": user, "reason": "user_in_several_buckets", "buckets": buckets})


class FindUsersInSeveralBuckets(beam.PTransform):
    """Records -> JSON lines for users seen in more than one bucket (broken randomisation).

    Their rows still count in each bucket they appear in; the job reports them instead of guessing.
    """

    def expand(self, records):
        return (records
                | "UserBucket" >> beam.Map(lambda r: (r[0], r[1]))
                | "Distinct" >> beam.Distinct()
                | "GroupBuckets" >> beam.GroupByKey()
                | "Flag" >> beam.ParDo(_FlagMixedUsersFn()))


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return str(value)


def stats_csv_lines(rows: Iterable[tuple], with_day: bool, pre_period: bool = False) -> list[str]:
    """(group, SufficientStats) pairs -> sorted CSV lines with header (the pre-period sums too
    when ``pre_period``)."""
    names = ALL_FIELD_NAMES if pre_period else FIELD_NAMES
    header = ",".join(("bucket", "day") + names if with_day else ("bucket",) + names)
    body = []
    for group, stats in sorted(rows, key=lambda kv: kv[0]):
        keys = list(group) if with_day else [group]
        values = stats.to_dict()
        body.append(",".join([str(k) for k in keys] + [_number(values[f]) for f in names]))
    return [header] + body


class _WriteFileFn(beam.DoFn):
    """Writes one whole file from one element (a list of lines), so the row order is fixed."""

    def __init__(self, path: str):
        self.path = path

    def process(self, lines):
        with FileSystems.create(self.path) as handle:
            handle.write(("\n".join(lines) + "\n").encode("utf-8") if lines else b"")
        yield self.path


class WriteStatsCsv(beam.PTransform):
    def __init__(self, path: str, with_day: bool, pre_period: bool = False, label: str | None = None):
        super().__init__(label)
        self.path, self.with_day, self.pre_period = path, with_day, pre_period

    def expand(self, stats):
        return (stats
                | "Collect" >> beam.combiners.ToList()
                | "Format" >> beam.Map(stats_csv_lines, self.with_day, self.pre_period)
                | "Write" >> beam.ParDo(_WriteFileFn(self.path)))


class WriteLines(beam.PTransform):
    def __init__(self, path: str, label: str | None = None):
        super().__init__(label)
        self.path = path

    def expand(self, lines):
        return (lines
                | "Collect" >> beam.combiners.ToList()
                | "Sort" >> beam.Map(sorted)
                | "Write" >> beam.ParDo(_WriteFileFn(self.path)))


def output_paths(out: str) -> dict[str, str]:
    """The four files written for ``--out OUT``."""
    stem = out[: -len(".csv")] if out.endswith(".csv") else out
    return {"overall": out, "daily": f"{stem}.daily.csv", "cumulative": f"{stem}.cumulative.csv",
            "rejected": f"{stem}.rejected.jsonl"}


def build_pipeline(pipeline: beam.Pipeline, input_pattern: str, out: str,
                   pre_input_pattern: str | None = None) -> None:
    paths = output_paths(out)
    lines = pipeline | "Read" >> beam.io.ReadFromText(input_pattern, skip_header_lines=1,
                                                      validate=not input_pattern.startswith("gs://"))
    parsed = lines | "ParseLogs" >> ParseImpressionLogs()
    records = parsed.records
    problems = [parsed[REJECTED]]
    pre_totals = None
    if pre_input_pattern:
        pre_lines = pipeline | "ReadPre" >> beam.io.ReadFromText(
            pre_input_pattern, skip_header_lines=1, validate=not pre_input_pattern.startswith("gs://"))
        pre_parsed = pre_lines | "ParsePreLogs" >> ParseImpressionLogs(pre_period=True)
        problems.append(pre_parsed[REJECTED])
        pre_totals = pre_parsed.records | "PreUserTotals" >> ComputePreUserTotals()
    with_pre = pre_totals is not None

    def attach(totals, name: str, count: bool = False):
        return totals | name >> AttachPrePeriod(pre_totals, count=count) if with_pre else totals

    overall = attach(records | "UserTotals" >> ComputeUserTotals()
                     | "CountUsers" >> beam.ParDo(_CountUsersFn()), "PrePeriodOverall", count=True)
    overall = overall | "BucketStats" >> ComputeBucketSufficientStats(pre_period=with_pre)
    daily = (attach(records | "UserDayTotals" >> ComputeUserTotals(per_day=True), "PrePeriodDaily")
             | "DailyStats" >> ComputeBucketSufficientStats(pre_period=with_pre))
    cumulative = records | "CumulativeStats" >> ComputeCumulativeDailyStats(pre_totals)
    overall | "WriteOverall" >> WriteStatsCsv(paths["overall"], with_day=False, pre_period=with_pre)
    daily | "WriteDaily" >> WriteStatsCsv(paths["daily"], with_day=True, pre_period=with_pre)
    cumulative | "WriteCumulative" >> WriteStatsCsv(paths["cumulative"], with_day=True, pre_period=with_pre)
    problems.append(records | "UsersInSeveralBuckets" >> FindUsersInSeveralBuckets())
    (problems | "AllProblems" >> beam.Flatten() | "WriteRejected" >> WriteLines(paths["rejected"]))


class _CountUsersFn(beam.DoFn):
    def __init__(self):
        self.users = Metrics.counter(NAMESPACE, "users")

    def process(self, element):
        self.users.inc()
        yield element


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, help="CSV file or glob: user,bucket,day,impressions,clicks")
    parser.add_argument("--out", required=True, help="overall sufficient-statistics CSV (others go next to it)")
    parser.add_argument("--pre-input", dest="pre_input", default=None,
                        help="pre-period CSV file or glob: user,day,impressions,clicks (adds the CUPED sums)")
    known, beam_args = parser.parse_known_args(argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = ["--runner=FnApiRunner"] + beam_args
    return known, beam_args


def run(argv: list[str] | None = None):
    """Build and run the job; returns the Beam ``PipelineResult`` (finished)."""
    known, beam_args = parse_args(argv)
    parent = str(PurePosixPath(known.out).parent) if "://" not in known.out else None
    if parent and parent not in ("", "."):
        import os

        os.makedirs(parent, exist_ok=True)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, known.input, known.out, known.pre_input)
    result = pipeline.run()
    result.wait_until_finish()
    return result


if __name__ == "__main__":
    run()
