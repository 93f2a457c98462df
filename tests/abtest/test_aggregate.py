"""Beam A/B aggregation: PTransforms with TestPipeline(FnApiRunner) + assert_that, and the whole job."""
from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from abtest import aggregate as job
from abtest.analyze import analyze
from abtest.experiment_data import read_experiment
from abtest.stats.sufficient import SufficientStats
from adpush.cli import main

# (user, bucket, day, impressions, clicks)
RECORDS = [
    ("u1", "A", 0, 4, 1), ("u1", "A", 1, 6, 0), ("u2", "A", 1, 5, 2),
    ("u3", "B", 0, 3, 1), ("u3", "B", 2, 2, 1), ("u4", "B", 0, 7, 0),
]


def test_user_totals_and_bucket_stats():
    with BeamTestPipeline(runner="FnApiRunner") as p:
        records = p | beam.Create(RECORDS)
        totals = records | job.ComputeUserTotals()
        assert_that(totals, equal_to([(("A", "u1"), (10, 1)), (("A", "u2"), (5, 2)),
                                      (("B", "u3"), (5, 2)), (("B", "u4"), (7, 0))]), label="totals")
        stats = totals | job.ComputeBucketSufficientStats()
        assert_that(stats, equal_to([
            ("A", SufficientStats.from_arrays([10, 5], [1, 2])),
            ("B", SufficientStats.from_arrays([5, 7], [2, 0])),
        ]), label="stats")
        daily = records | "daily" >> job.ComputeUserTotals(per_day=True) | "dstats" >> job.ComputeBucketSufficientStats()
        assert_that(daily, equal_to([
            (("A", 0), SufficientStats.from_arrays([4], [1])),
            (("A", 1), SufficientStats.from_arrays([6, 5], [0, 2])),
            (("B", 0), SufficientStats.from_arrays([3, 7], [1, 0])),
            (("B", 2), SufficientStats.from_arrays([2], [1])),
        ]), label="daily")


def test_cumulative_daily_stats():
    with BeamTestPipeline(runner="FnApiRunner") as p:
        cumulative = p | beam.Create(RECORDS) | job.ComputeCumulativeDailyStats()
        assert_that(cumulative, equal_to([
            (("A", 0), SufficientStats.from_arrays([4], [1])),
            (("A", 1), SufficientStats.from_arrays([10, 5], [1, 2])),
            (("A", 2), SufficientStats.from_arrays([10, 5], [1, 2])),
            (("B", 0), SufficientStats.from_arrays([3, 7], [1, 0])),
            (("B", 1), SufficientStats.from_arrays([3, 7], [1, 0])),
            (("B", 2), SufficientStats.from_arrays([5, 7], [2, 0])),
        ]))


def test_parse_rejects_bad_rows_with_reasons():
    lines = ["u1,A,0,4,1", "u2,A,0,3,5", "u3,B,x,1,0", "u4,B,0,-1,0", "u5,B,0,1", ""]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(lines) | job.ParseImpressionLogs()
        assert_that(parsed.records, equal_to([("u1", "A", 0, 4, 1)]), label="good")
        reasons = parsed[job.REJECTED] | beam.Map(lambda s: json.loads(s)["reason"])
        assert_that(reasons, equal_to(["clicks_exceed_impressions", "not_an_integer", "negative", "field_count"]),
                    label="bad")


def test_users_in_several_buckets_are_reported():
    records = RECORDS + [("u1", "B", 3, 1, 0)]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        flagged = p | beam.Create(records) | job.FindUsersInSeveralBuckets() | beam.Map(json.loads)
        assert_that(flagged, equal_to([{"user": "u1", "reason": "user_in_several_buckets", "buckets": ["A", "B"]}]))


def _write_logs(path, seed=0, users=400, days=3):
    rng = np.random.default_rng(seed)
    lines = ["user,bucket,day,impressions,clicks"]
    for bucket, ctr in (("control", 0.05), ("treatment", 0.06)):
        for u in range(users):
            theta = rng.beta(2, 2 / ctr - 2)
            for day in range(days):
                if rng.random() < 0.7:
                    m = int(rng.geometric(0.2))
                    lines.append(f"{bucket}-{u},{bucket},{day},{m},{int(rng.binomial(m, theta))}")
    path.write_text("\n".join(lines) + "\nbroken,row\n")
    return path


def test_job_output_matches_numpy_analysis(tmp_path):
    logs = _write_logs(tmp_path / "logs.csv")
    out = tmp_path / "out" / "stats.csv"
    result = job.run(["--input", str(logs), "--out", str(out)])
    counters = {r.key.metric.name: r.committed for r in result.metrics().query(MetricsFilter())["counters"]}
    assert counters["rows_read"] == len(logs.read_text().splitlines()) - 1
    assert counters["rows_rejected_field_count"] == 1
    paths = job.output_paths(str(out))
    assert json.loads(open(paths["rejected"]).read())["line"] == "broken,row"
    # The same logs as per-user rows through the numpy reader give identical statistics.
    rows = tmp_path / "rows.csv"
    body = [ln.split(",") for ln in logs.read_text().splitlines()[1:-1]]
    rows.write_text("bucket,user,day,impressions,clicks\n" + "\n".join(f"{b},{u},{d},{m},{c}" for u, b, d, m, c in body) + "\n")
    reference = read_experiment(rows)
    from_beam = read_experiment(out)
    assert from_beam.stats == reference.stats
    assert read_experiment(paths["cumulative"]).per_day == reference.per_day
    assert counters["users"] == sum(s.n for s in reference.stats.values())
    report = analyze(out, per_day_path=paths["cumulative"])
    assert report["comparisons"] == analyze(rows)["comparisons"]
    assert [c["day"] for c in report["per_day"]] == [0, 1, 2]


def test_cli_aggregate(tmp_path, capsys):
    logs = _write_logs(tmp_path / "logs.csv", users=30, days=2)
    out = tmp_path / "agg.csv"
    assert main(["abtest", "aggregate", "--input", str(logs), "--out", str(out), "--runner", "FnApiRunner"]) == 0
    assert out.read_text().startswith("bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm\ncontrol,")
    assert "1 row(s) rejected" in capsys.readouterr().out


# (user, day, impressions, clicks) before the experiment; u9 never enters it.
PRE_RECORDS = [("u1", 0, 8, 1), ("u1", 3, 2, 1), ("u3", 1, 6, 0), ("u9", 0, 5, 5)]


def test_pre_period_joined_on_user():
    with BeamTestPipeline(runner="FnApiRunner") as p:
        records = p | "exp" >> beam.Create(RECORDS)
        pre = p | "pre" >> beam.Create(PRE_RECORDS) | job.ComputePreUserTotals()
        joined = records | job.ComputeUserTotals() | job.AttachPrePeriod(pre)
        assert_that(joined, equal_to([(("A", "u1"), (10, 1, 10, 2)), (("A", "u2"), (5, 2, 0, 0)),
                                      (("B", "u3"), (5, 2, 6, 0)), (("B", "u4"), (7, 0, 0, 0))]), label="joined")
        stats = joined | job.ComputeBucketSufficientStats(pre_period=True)
        assert_that(stats, equal_to([
            ("A", SufficientStats.from_arrays([10, 5], [1, 2], pre_impressions=[10, 0], pre_clicks=[2, 0])),
            ("B", SufficientStats.from_arrays([5, 7], [2, 0], pre_impressions=[6, 0], pre_clicks=[0, 0])),
        ]), label="stats")


def test_parse_pre_period_rows():
    lines = ["u1,0,4,1", "u2,0,3,5", "u3,x,1,0", ",0,1,0", "u5,0,1,0,7"]
    with BeamTestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(lines) | job.ParseImpressionLogs(pre_period=True)
        assert_that(parsed.records, equal_to([("u1", 0, 4, 1)]), label="good")
        letters = parsed[job.REJECTED] | beam.Map(lambda s: (json.loads(s)["reason"], json.loads(s)["input"]))
        assert_that(letters, equal_to([("clicks_exceed_impressions", "pre_period"), ("not_an_integer", "pre_period"),
                                       ("empty_id", "pre_period"), ("field_count", "pre_period")]), label="bad")


def _write_pre_logs(path, seed=1, users=400):
    rng = np.random.default_rng(seed)
    lines = ["user,day,impressions,clicks"]
    for bucket in ("control", "treatment"):
        for u in range(users):
            if rng.random() < 0.8:
                m = int(rng.geometric(0.1))
                lines.append(f"{bucket}-{u},{int(rng.integers(0, 7))},{m},{int(rng.binomial(m, 0.05))}")
    lines.append("ghost,0,3,1")  # a pre-period user who never enters the experiment
    path.write_text("\n".join(lines) + "\nu1,0,2,9\n")
    return path


def test_job_with_pre_period_matches_the_per_user_reader(tmp_path, capsys):
    logs, pre = _write_logs(tmp_path / "logs.csv"), _write_pre_logs(tmp_path / "pre.csv")
    out = tmp_path / "out" / "stats.csv"
    assert main(["abtest", "aggregate", "--input", str(logs), "--pre-input", str(pre), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # Reference: per-user rows with each user's pre-period totals repeated on every row.
    pre_totals: dict[str, list[int]] = {}
    for line in pre.read_text().splitlines()[1:-1]:
        user, _day, m, c = line.split(",")
        total = pre_totals.setdefault(user, [0, 0])
        total[0] += int(m)
        total[1] += int(c)
    body = [ln.split(",") for ln in logs.read_text().splitlines()[1:-1]]
    rows = tmp_path / "rows.csv"
    rows.write_text("bucket,user,day,impressions,clicks,pre_impressions,pre_clicks\n" + "\n".join(
        f"{b},{u},{d},{m},{c},{pre_totals.get(u, [0, 0])[0]},{pre_totals.get(u, [0, 0])[1]}"
        for u, b, d, m, c in body) + "\n")
    reference = read_experiment(rows)
    assert read_experiment(out).stats == reference.stats
    assert reference.stats["control"].has_pre_period
    experiment_users = {u for u, *_ in body}
    matched = len(set(pre_totals) & experiment_users)
    assert f"{matched} experiment user(s) have pre-period traffic, {len(set(pre_totals) - experiment_users)} " \
           f"pre-period user(s) never entered the experiment (dropped); 1 row(s) rejected" in printed
    paths = job.output_paths(str(out))
    assert read_experiment(paths["cumulative"]).per_day == reference.per_day
    assert {json.loads(ln)["line"] for ln in open(paths["rejected"])} == {"broken,row", "u1,0,2,9"}
    report = analyze(out, per_day_path=paths["cumulative"])
    assert report["comparisons"] == analyze(rows)["comparisons"]
    assert report["comparisons"][0]["relative_lift_cuped"] is not None
    assert all(c["relative_lift_cuped"] is not None for c in report["per_day"])


@pytest.mark.slow
def test_dataflow_dry_run_translates_offline(tmp_path, monkeypatch):
    # BEAM_NOTES.md §3: --dry_run=True validates and translates the Dataflow job without network.
    monkeypatch.chdir(tmp_path)
    result = job.run(["--input", "gs://my-bucket/logs/*.csv", "--out", "gs://my-bucket/out/stats.csv",
                      "--runner=DataflowRunner", "--project=my-project-123", "--region=us-central1",
                      "--temp_location=gs://my-bucket/tmp", "--dry_run=True", "--no_auth",
                      "--sdk_location=container"])
    assert result.state == "DONE"
