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
    np.testing.assert_allclose(result.p_values["delta"], result.p_values["naive"], atol=0.01)
    assert np.mean(result.design_effect) == pytest.approx(1.0, abs=0.01)


def test_delta_within_band_and_naive_inflated_1000_runs():
    summary = aa.run_aa(runs=1000, users_per_bucket=2000, seed=0).summary()
    assert summary["delta_within_band"]
    naive = summary["tests"]["naive"]
    assert naive["ci_low"] > summary["tests"]["delta"]["ci_high"]
    assert 1.5 < summary["mean_design_effect"] < 1.95


@pytest.mark.slow
def test_aa_calibration_10000_runs_within_band():
    summary = aa.run_aa(runs=10_000, users_per_bucket=2000, seed=2026).summary()
    delta, naive = summary["tests"]["delta"], summary["tests"]["naive"]
    assert 0.035 <= delta["false_positive_rate"] <= 0.065
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
    assert (out / "aa_pvalues.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "false-positive rate" in (out / "aa.md").read_text()
    assert "naive" in capsys.readouterr().out
    again = tmp_path / "again"
    main(["abtest", "aa", "--runs", "300", "--users", "500", "--seed", "5", "--out-dir", str(again)])
    for name in ("aa.json", "aa.md", "aa_pvalues.png"):  # same seed -> same files
        assert (out / name).read_bytes() == (again / name).read_bytes()
    assert main(["abtest", "aa", "--runs", "10", "--ctr-beta", "2", "--out-dir", str(out)]) == 2


def test_peeking_inflates_the_fixed_horizon_test_not_the_confidence_sequence():
    result = aa.run_aa(runs=600, users_per_bucket=1000, seed=4, peeks=10)
    tests = result.summary()["tests"]
    assert tests["delta_peeking"]["ci_low"] > 0.1  # ABTEST_STATS.md: 26 % at 20 peeks
    assert tests["sequential_peeking"]["false_positive_rate"] < 0.05
    # The last look sees every user: the peeking minimum is never above the final p-value.
    assert np.all(result.p_values["delta_peeking"] <= result.p_values["delta"] + 1e-12)
