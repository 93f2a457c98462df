"""`adpush abtest analyze`: both input layouts, the JSON keys, and clear errors on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from abtest import analyze
from abtest.experiment_data import read_experiment
from abtest.split import parse_split
from abtest.stats.comparison import REPORT_KEYS
from abtest.stats.sufficient import SufficientStats
from adpush.cli import main
from adpush_core.errors import UserError

A_M, A_C = [10, 5, 20, 2, 8], [1, 0, 3, 1, 0]
B_M, B_C = [4, 6, 10, 3, 7], [1, 2, 1, 0, 1]


def _write(path, text):
    path.write_text(text)
    return path


def _user_rows(tmp_path, name="users.csv", extra=""):
    lines = ["bucket,user,impressions,clicks"]
    lines += [f"control,a{i},{m},{c}" for i, (m, c) in enumerate(zip(A_M, A_C))]
    lines += [f"test,b{i},{m},{c}" for i, (m, c) in enumerate(zip(B_M, B_C))]
    return _write(tmp_path / name, "\n".join(lines) + "\n" + extra)


def test_user_rows_and_sufficient_stats_give_the_same_report(tmp_path):
    from_rows = analyze.analyze(_user_rows(tmp_path))
    a, b = SufficientStats.from_arrays(A_M, A_C), SufficientStats.from_arrays(B_M, B_C)
    lines = ["bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm"]
    for name, s in (("control", a), ("test", b)):
        d = s.to_dict()
        lines.append(",".join([name] + [repr(d[k]) for k in ("n", "sum_c", "sum_m", "sum_c2", "sum_m2", "sum_cm")]))
    from_stats = analyze.analyze(_write(tmp_path / "stats.csv", "\n".join(lines) + "\n"))
    assert from_rows["comparisons"] == from_stats["comparisons"]
    row = from_rows["comparisons"][0]
    assert list(row)[: len(REPORT_KEYS)] == list(REPORT_KEYS)
    assert row["control"] == "control" and row["treatment"] == "test"
    assert row["relative_lift"] == pytest.approx(0.5)
    assert (row["impressions_control"], row["clicks_treatment"], row["users_treatment"]) == (45, 5, 5)


def test_rows_of_one_user_are_summed_and_days_give_cumulative_comparisons(tmp_path):
    lines = ["bucket,user,day,impressions,clicks"]
    for i, (m, c) in enumerate(zip(A_M, A_C)):  # split each user over two days
        lines += [f"control,a{i},0,{m // 2},{min(c, m // 2)}", f"control,a{i},1,{m - m // 2},{c - min(c, m // 2)}"]
    for i, (m, c) in enumerate(zip(B_M, B_C)):
        lines += [f"test,b{i},0,{m // 2},{min(c, m // 2)}", f"test,b{i},1,{m - m // 2},{c - min(c, m // 2)}"]
    report = analyze.analyze(_write(tmp_path / "days.csv", "\n".join(lines) + "\n"))
    overall = analyze.analyze(_user_rows(tmp_path))
    assert report["comparisons"] == overall["comparisons"]
    assert [c["day"] for c in report["per_day"]] == [0, 1]
    last = dict(report["per_day"][1], day=None)
    assert last == overall["comparisons"][0] | {"p_value_holm": last["p_value_holm"], "p_value_bh": last["p_value_bh"]}


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "out" / "report.json"
    rc = main(["abtest", "analyze", "--input", str(_user_rows(tmp_path)), "--control", "control",
               "--split", "control=1,test=1", "--sequential", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["comparisons"][0]["p_value_sequential"] is not None
    assert "control -> test" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,4,-1\ntest,u3,3,1\ntest,u4,3,0\n",
     "row 3: field 'clicks' = '-1' is negative"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,4,6\ntest,u3,3,1\ntest,u4,3,0\n",
     "row 3: clicks = 6 exceeds impressions = 4"),
    ("bucket,user,impressions,clicks,colour\ncontrol,u1,5,1,red\n", "unknown column(s) ['colour']"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,x,1\n", "row 3: field 'impressions' = 'x'"),
    ("bucket,user,impressions,clicks\ncontrol,u1,0,0\ncontrol,u2,0,0\ntest,u3,3,1\ntest,u4,3,0\n",
     "bucket 'control' has zero impressions"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ntest,u1,4,1\n", "user 'u1' appears in buckets"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,4,1\n", "need a control and at least one"),
    ("bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm\ncontrol,10,50,40,60,200,100\ntest,10,5,40,6,200,30\n",
     "row 2: sum_c = 50 exceeds sum_m = 40"),
    ("bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm\ncontrol,10.5,5,40,6,200,30\n", "field 'n' = '10.5' is not an integer"),
    ("bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm\ncontrol,10,5,40,6,200,30\ntest,10,5,40,6,100,30\n",
     "row 3: sum_m2 = 100 is smaller than sum_m²/n = 160"),
    ("foo,bar\n1,2\n", "unknown column(s) ['bar', 'foo']"),
    # a control without clicks (issue 16: p = 1.6e-16 on 2 + 2 users) and other untestable buckets
    ("bucket,user,impressions,clicks\ncontrol,u1,5,0\ncontrol,u2,4,0\ntest,u3,3,1\ntest,u4,3,0\n",
     "control bucket 'control' has no clicks: the control CTR is 0"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,4,0\ntest,u3,3,0\ntest,u4,3,0\n",
     "bucket 'test' has zero variance of the per-user linearised CTR (no user clicked)"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5,1\ncontrol,u2,4,0\ntest,u3,3,1\n",
     "bucket 'test' has 1 user(s)"),
    # pre-period columns
    ("bucket,user,impressions,clicks,pre_impressions\ncontrol,u1,5,1,3\n",
     "pre-period column(s) ['pre_impressions'] without ['pre_clicks']"),
    ("bucket,user,day,impressions,clicks,pre_impressions,pre_clicks\ncontrol,u1,0,5,1,3,1\ncontrol,u1,1,5,1,4,1\n",
     "user 'u1' has different pre_impressions on rows 2, 3"),
    ("bucket,user,impressions,clicks,pre_impressions,pre_clicks\ncontrol,u1,5,1,3,4\n",
     "row 2: pre_clicks = 4 exceeds pre_impressions = 3"),
    ("bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm,sum_c_pre\ncontrol,10,5,40,6,200,30,1\n",
     "pre-period column(s) ['sum_c_pre'] without"),
    ("bucket,user,impressions,clicks\ncontrol,u1,5\n", "row 2 has 3 fields"),
])
def test_bad_input_names_the_row_and_field(tmp_path, text, message):
    with pytest.raises(UserError, match=None) as err:
        analyze.analyze(_write(tmp_path / "bad.csv", text))
    assert message in str(err.value)


def test_missing_control_and_bad_split(tmp_path):
    path = _user_rows(tmp_path)
    with pytest.raises(UserError, match="control bucket 'base' is not in the input"):
        analyze.analyze(path, control="base")
    with pytest.raises(UserError, match="unknown bucket"):
        analyze.analyze(path, split="control=1,other=1")
    with pytest.raises(UserError, match="2 weights for 3 buckets"):
        parse_split("1,1", ["a", "b", "c"])
    assert parse_split("60,40", ["a", "b"]) == {"a": 60.0, "b": 40.0}


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    bad = _write(tmp_path / "bad.csv", "bucket,user,impressions,clicks\ncontrol,u1,5,9\n")
    assert main(["abtest", "analyze", "--input", str(bad), "--out", str(tmp_path / "r.json")]) == 2
    assert "row 2: clicks = 9 exceeds impressions = 5" in capsys.readouterr().err


def test_srm_flag_uses_the_configured_split(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["bucket,user,impressions,clicks"]
    for bucket, n in (("control", 600), ("test", 400)):
        m = rng.integers(1, 10, n)
        c = rng.binomial(m, 0.1)
        lines += [f"{bucket},{bucket}{i},{mi},{ci}" for i, (mi, ci) in enumerate(zip(m, c))]
    path = _write(tmp_path / "srm.csv", "\n".join(lines) + "\n")
    assert analyze.analyze(path)["comparisons"][0]["srm_flag"] is True
    assert analyze.analyze(path, split="60,40")["comparisons"][0]["srm_flag"] is False


def test_the_simulator_adds_abtest_run():
    from abtest.simulator import cli as simulator_cli
    from adpush.cli import build_parser

    args = build_parser().parse_args(["abtest", "run", "--scenario", "x", "--out", "R"])
    assert args.scenario == "x" and args.func is simulator_cli._run


def _pre_rows(tmp_path, seed=0, n=400):
    """Per-user rows with a pre-period: a persistent CTR per user drives both periods."""
    rng = np.random.default_rng(seed)
    lines = ["bucket,user,impressions,clicks,pre_impressions,pre_clicks"]
    for bucket, lift in (("control", 1.0), ("test", 1.05)):
        theta = rng.beta(2, 40, n)
        for i in range(n):
            m, mp = rng.poisson(60, 2)
            lines.append(f"{bucket},{bucket}{i},{m},{rng.binomial(m, theta[i] * lift)},{mp},{rng.binomial(mp, theta[i])}")
    return _write(tmp_path / "pre.csv", "\n".join(lines) + "\n")


def test_pre_period_columns_give_cuped_from_rows_and_from_statistics(tmp_path, capsys):
    path = _pre_rows(tmp_path)
    report = analyze.analyze(path)
    row = report["comparisons"][0]
    assert row["relative_lift_cuped"] is not None and row["variance_reduction_cuped"] > 0.2
    assert row["ci_high_cuped"] - row["ci_low_cuped"] < row["ci_high"] - row["ci_low"]
    # The same data as sufficient statistics (what `abtest aggregate --pre-input` writes).
    data = read_experiment(path)
    names = list(data.stats["control"].to_dict())
    lines = ["bucket," + ",".join(names)]
    for bucket, s in data.stats.items():
        lines.append(bucket + "," + ",".join(repr(v) for v in s.to_dict().values()))
    from_stats = analyze.analyze(_write(tmp_path / "stats.csv", "\n".join(lines) + "\n"))
    assert from_stats["comparisons"] == report["comparisons"]
    assert set(report["buckets"]["control"]) >= {"sum_c_pre", "sum_m_c_pre"}
    # --no-cuped leaves the adjusted figures out; the CLI prints both.
    assert analyze.analyze(path, cuped=False)["comparisons"][0]["relative_lift_cuped"] is None
    assert main(["abtest", "analyze", "--input", str(path), "--out", str(tmp_path / "r.json")]) == 0
    assert "CUPED" in capsys.readouterr().out
