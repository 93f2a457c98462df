"""A/A calibration: the delta-method test holds its level on clustered traffic, the naive one does not."""
from __future__ import annotations

import json

import numpy as np
import pytest

from abtest import aa
from adpush.cli import main


def test_clustered_traffic_interface_and_moments():
    traffic = aa.ClusteredTraffic()
    m, c = traffic(200_000, np.random.default_rng(1))
    assert m.shape == c.shape == (200_000,)
    assert m.min() >= 1 and np.all(c <= m)
    assert m.mean() == pytest.approx(20, rel=0.02)
    assert c.sum() / m.sum() == pytest.approx(2 / 52, rel=0.03)
    m2, _ = aa.ClusteredTraffic(impressions="lognormal")(200_000, np.random.default_rng(1))
    assert m2.mean() == pytest.approx(20, rel=0.03) and m2.max() > m.max()


def test_same_seed_same_result():
    first = aa.run_aa(runs=50, users_per_bucket=200, seed=11)
    second = aa.run_aa(runs=50, users_per_bucket=200, seed=11)
    np.testing.assert_array_equal(first.p_values["delta"], second.p_values["delta"])
    assert first.summary() == second.summary()
    assert not np.array_equal(first.p_values["delta"], aa.run_aa(runs=50, users_per_bucket=200, seed=12).p_values["delta"])


def test_iid_traffic_plugs_in_and_both_tests_agree():
    def one_impression_per_user(n_users, rng):
        return np.ones(n_users, dtype=np.int64), rng.binomial(1, 0.05, n_users)

    result = aa.run_aa(runs=200, users_per_bucket=1000, traffic=one_impression_per_user, seed=3)
    # Without clustering the user-level test is the binomial one: the report's p (relative lift
    # over its delta SE) tracks the pooled z-test's run by run; their statistics differ only in
    # how the control's variance is scaled by (R_B / R_A)².
    delta, naive = result.p_values["delta"], result.p_values["naive"]
    assert np.corrcoef(delta, naive)[0, 1] > 0.99
    assert np.mean(np.abs(delta - naive)) < 0.04
    assert np.mean(result.design_effect) == pytest.approx(1.0, abs=0.01)
    # ... while the delta-method test of the absolute difference is the pooled z-test up to
    # Bessel's correction.
    from abtest.stats import SufficientStats, inference

    rng = np.random.default_rng(3)
    m, c = one_impression_per_user(2 * 200 * 1000, rng)
    a = SufficientStats.from_arrays(m.reshape(200, 2, 1000)[:, 0], c.reshape(200, 2, 1000)[:, 0])
    b = SufficientStats.from_arrays(m.reshape(200, 2, 1000)[:, 1], c.reshape(200, 2, 1000)[:, 1])
    np.testing.assert_allclose(inference.delta_method_test(a, b).p_value, inference.naive_ztest(a, b).p_value,
                               atol=0.01)


def test_band_is_five_percent_plus_minus_one_point_and_needs_enough_runs():
    assert aa.CALIBRATION_TOLERANCE == 0.01
    # z_{.995}² · α(1 − α) / 0.01² = 2.5758² · 0.0475 / 1e-4: below that a calibrated test would
    # leave the band by chance more than 1 % of the time.
    assert aa.runs_for_band(0.05) == 3152
    few = aa.run_aa(runs=500, users_per_bucket=200, seed=1).summary()
    assert few["band_meaningful"] is False and few["delta_band"] == pytest.approx([0.04, 0.06])


def test_delta_within_band_and_naive_inflated_10000_runs():
    summary = aa.run_aa(runs=10_000, users_per_bucket=2000, seed=0).summary()
    assert summary["band_meaningful"] and summary["delta_within_band"]
    delta, naive = summary["tests"]["delta"], summary["tests"]["naive"]
    assert 0.04 <= delta["false_positive_rate"] <= 0.06
    assert naive["ci_low"] > delta["ci_high"]
    assert 1.5 < summary["mean_design_effect"] < 1.95
    assert summary["lift_ci_coverage"] == pytest.approx(1 - delta["false_positive_rate"], abs=1e-12)


def test_cuped_within_band_10000_runs():
    """With a pre-period (the same users' CTR, fresh impressions) the CUPED test still rejects
    5 % ± 1 point of A/A runs, its p-values are uniform, and it is narrower than the unadjusted."""
    result = aa.run_aa(runs=10_000, users_per_bucket=2000, seed=17, cuped=True)
    summary = result.summary()
    cuped = summary["tests"]["cuped"]
    assert summary["cuped_within_band"] and summary["delta_within_band"]
    assert 0.04 <= cuped["false_positive_rate"] <= 0.06
    assert cuped["ks_uniform_p"] > 0.001
    assert summary["cuped_lift_ci_coverage"] == pytest.approx(1 - cuped["false_positive_rate"], abs=1e-12)
    assert summary["mean_cuped_variance_reduction"] > 0.02
    assert result.within_band


@pytest.mark.slow
def test_aa_calibration_10000_runs_within_band():
    summary = aa.run_aa(runs=10_000, users_per_bucket=2000, seed=2026).summary()
    delta, naive = summary["tests"]["delta"], summary["tests"]["naive"]
    assert 0.04 <= delta["false_positive_rate"] <= 0.06
    assert delta["ci_low"] < 0.05 < delta["ci_high"]
    assert 0.11 < naive["false_positive_rate"] < 0.16  # ABTEST_STATS.md: 13.2 %
    assert summary["tests"]["sequential"]["false_positive_rate"] < 0.05  # one look: conservative
    assert delta["ks_uniform_p"] > 0.001 and naive["ks_uniform_p"] < 1e-10
    assert summary["lift_ci_coverage"] == pytest.approx(0.95, abs=0.01)


def test_cli_writes_summary_and_plot(tmp_path, capsys):
    out = tmp_path / "aa"
    rc = main(["abtest", "aa", "--runs", "300", "--users", "500", "--seed", "5", "--out-dir", str(out)])
    summary = json.loads((out / "aa.json").read_text())
    assert rc == (0 if summary["delta_within_band"] else 1)
    assert "too few" in capsys.readouterr().out  # 300 runs: the band means little
    assert (out / "aa_pvalues.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "false-positive rate" in (out / "aa.md").read_text()
    again = tmp_path / "again"
    main(["abtest", "aa", "--runs", "300", "--users", "500", "--seed", "5", "--out-dir", str(again)])
    for name in ("aa.json", "aa.md", "aa_pvalues.png"):  # same seed -> same files
        assert (out / name).read_bytes() == (again / name).read_bytes()
    assert main(["abtest", "aa", "--runs", "10", "--ctr-beta", "2", "--out-dir", str(out)]) == 2
    assert main(["abtest", "aa", "--runs", "4000", "--users", "300", "--cuped", "--seed", "5",
                 "--out-dir", str(tmp_path / "cuped")]) in (0, 1)
    printed = capsys.readouterr().out
    assert "cuped" in printed and "delta-method and CUPED rates" in printed
    assert "CUPED rate" in (tmp_path / "cuped" / "aa.md").read_text()


def test_peeking_inflates_the_fixed_horizon_test_not_the_confidence_sequence():
    result = aa.run_aa(runs=600, users_per_bucket=1000, seed=4, peeks=10)
    tests = result.summary()["tests"]
    assert tests["delta_peeking"]["ci_low"] > 0.1  # ABTEST_STATS.md: 26 % at 20 peeks
    assert tests["sequential_peeking"]["false_positive_rate"] < 0.05
    # The last look sees every user: the peeking minimum is never above the final p-value.
    assert np.all(result.p_values["delta_peeking"] <= result.p_values["delta"] + 1e-12)
