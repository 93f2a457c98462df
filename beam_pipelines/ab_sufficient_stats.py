"""Beam job: impression logs -> per-bucket sufficient statistics of per-user clicks and impressions.

Input: CSV text files with header ``user,bucket,day,impressions,clicks`` (one row per user-day,
or per impression with impressions = 1). Output, next to ``--out``:

* ``OUT`` — ``bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm`` over each user's total (the input of
  ``adpush abtest analyze``);
* ``OUT_STEM.daily.csv`` — ``bucket,day,n,…`` over each user's totals of that day;
* ``OUT_STEM.cumulative.csv`` — ``bucket,day,n,…`` over each user's totals *through* that day
  (users active on or before it; ``analyze --per-day``, the cumulative-lift plot);
* ``OUT_STEM.rejected.jsonl`` — rows that failed validation, with the reason (dead letter), and
  users logged in more than one bucket (reason ``user_in_several_buckets``).

Counters: ``rows_read``, ``rows_rejected_<reason>``, ``users``, ``users_in_several_buckets``. Runs on FnApiRunner by default
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

from abtest.stats.sufficient import FIELD_NAMES, SufficientStats

NAMESPACE = "ab_sufficient_stats"
INPUT_COLUMNS = ("user", "bucket", "day", "impressions", "clicks")
REJECTED = "rejected"


class _ParseLogLineFn(beam.DoFn):
    """CSV line -> (user, bucket, day, impressions, clicks); bad rows to the ``rejected`` output."""

    def __init__(self):
        self.rows_read = Metrics.counter(NAMESPACE, "rows_read")

    def process(self, line: str):
        self.rows_read.inc()
        if not line.strip():
            return
        fields = [f.strip() for f in line.split(",")]
        reason = None
        if len(fields) != len(INPUT_COLUMNS):
            reason = "field_count"
        else:
            user, bucket = fields[0], fields[1]
            try:
                day, impressions, clicks = (int(f) for f in fields[2:])
            except ValueError:
                reason = "not_an_integer"
            else:
                if not user or not bucket:
                    reason = "empty_id"
                elif day < 0 or impressions < 0 or clicks < 0:
                    reason = "negative"
                elif clicks > impressions:
                    reason = "clicks_exceed_impressions"
        if reason:
            Metrics.counter(NAMESPACE, f"rows_rejected_{reason}").inc()
            yield pvalue.TaggedOutput(REJECTED, json.dumps({"line": line, "reason": reason}))
            return
        yield user, bucket, day, impressions, clicks


class ParseImpressionLogs(beam.PTransform):
    """Lines (header excluded) -> records, with tagged output ``rejected`` (JSON lines)."""

    def expand(self, lines):
        return lines | "Parse" >> beam.ParDo(_ParseLogLineFn()).with_outputs(REJECTED, main="records")


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
    """(impressions, clicks) of each user -> [n, Σc, Σm, Σc², Σm², Σcm]."""

    def create_accumulator(self):
        return [0, 0, 0, 0, 0, 0]

    def add_input(self, acc, user_total):
        m, c = user_total
        acc[0] += 1
        acc[1] += c
        acc[2] += m
        acc[3] += c * c
        acc[4] += m * m
        acc[5] += c * m
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
    """((group…, user), (impressions, clicks)) -> (group, SufficientStats), where group is the key
    without the user: ``bucket`` for overall totals, ``(bucket, day)`` for per-day ones."""

    def expand(self, user_totals):
        def drop_user(kv):
            key, value = kv
            group = key[:-1]
            return (group[0] if len(group) == 1 else group), value

        return (user_totals
                | "DropUser" >> beam.Map(drop_user)
                | "SufficientStats" >> beam.CombinePerKey(_SufficientStatsFn()))


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
    """Records -> ((bucket, day), SufficientStats) of users' totals through each day."""

    def expand(self, records):
        days = (records
                | "Days" >> beam.Map(lambda r: r[2])
                | "DistinctDays" >> beam.Distinct())
        cumulative = (records
                      | "KeyByUser" >> beam.Map(lambda r: ((r[1], r[0]), (r[2], r[3], r[4])))
                      | "GroupByUser" >> beam.GroupByKey()
                      | "Cumulate" >> beam.ParDo(_CumulativeTotalsFn(), days=beam.pvalue.AsList(days)))
        return cumulative | "Stats" >> ComputeBucketSufficientStats()


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


def stats_csv_lines(rows: Iterable[tuple], with_day: bool) -> list[str]:
    """(group, SufficientStats) pairs -> sorted CSV lines with header."""
    header = ",".join(("bucket", "day") + FIELD_NAMES if with_day else ("bucket",) + FIELD_NAMES)
    body = []
    for group, stats in sorted(rows, key=lambda kv: kv[0]):
        keys = list(group) if with_day else [group]
        values = stats.to_dict()
        body.append(",".join([str(k) for k in keys] + [_number(values[f]) for f in FIELD_NAMES]))
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
    def __init__(self, path: str, with_day: bool, label: str | None = None):
        super().__init__(label)
        self.path, self.with_day = path, with_day

    def expand(self, stats):
        return (stats
                | "Collect" >> beam.combiners.ToList()
                | "Format" >> beam.Map(stats_csv_lines, self.with_day)
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


def build_pipeline(pipeline: beam.Pipeline, input_pattern: str, out: str) -> None:
    paths = output_paths(out)
    lines = pipeline | "Read" >> beam.io.ReadFromText(input_pattern, skip_header_lines=1,
                                                      validate=not input_pattern.startswith("gs://"))
    parsed = lines | "ParseLogs" >> ParseImpressionLogs()
    records = parsed.records
    overall = (records
               | "UserTotals" >> ComputeUserTotals()
               | "CountUsers" >> beam.ParDo(_CountUsersFn())
               | "BucketStats" >> ComputeBucketSufficientStats())
    daily = (records
             | "UserDayTotals" >> ComputeUserTotals(per_day=True)
             | "DailyStats" >> ComputeBucketSufficientStats())
    cumulative = records | "CumulativeStats" >> ComputeCumulativeDailyStats()
    overall | "WriteOverall" >> WriteStatsCsv(paths["overall"], with_day=False)
    daily | "WriteDaily" >> WriteStatsCsv(paths["daily"], with_day=True)
    cumulative | "WriteCumulative" >> WriteStatsCsv(paths["cumulative"], with_day=True)
    mixed = records | "UsersInSeveralBuckets" >> FindUsersInSeveralBuckets()
    ((parsed[REJECTED], mixed) | "AllProblems" >> beam.Flatten()
     | "WriteRejected" >> WriteLines(paths["rejected"]))


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
    build_pipeline(pipeline, known.input, known.out)
    result = pipeline.run()
    result.wait_until_finish()
    return result


if __name__ == "__main__":
    run()
