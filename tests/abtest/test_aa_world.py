"""A/A calibration on the world's own traffic: deterministic, the delta method holds its level,
the naive test is inflated as the design effect predicts, and ``adpush abtest aa --traffic world``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from abtest.simulator.aa_world import WorldAATraffic, make_policy, run_aa_world
from abtest.simulator.policies import Policy
from abtest.simulator.traffic import DisplayPool, Experiment, simulate_experiment
from abtest.world import World, WorldConfig
from adpush.cli import main


@pytest.fixture(scope="module")
def world():
    # the A/B statistics are calibrated on the v1 world's traffic (abtest/world/configs/v1.toml)
    return World.build(WorldConfig.tiny(WorldConfig.named("v1")).replace(n_users=3000), seed=11)


@pytest.fixture(scope="module")
def traffic(world):
    return WorldAATraffic.from_world(world, displays=200_000, days=7, seed=1)


def test_rates_match_the_simulator(world, traffic):
    """Same pool seed as a scenario run -> the simulator's draws have the A/A rates' totals."""
    rng = np.random.default_rng(np.random.SeedSequence([1, 7]))
    pool = DisplayPool.sample(world, 32, rng)
    title = Policy("title_only")
    result = simulate_experiment(world, pool, Experiment("aa", title, title, displays=200_000, days=7), rng)
    expected_clicks = 7 * traffic.click_rate.sum()
    expected_displays = 7 * (traffic.click_rate + traffic.no_click_rate).sum()
    assert expected_displays == pytest.approx(200_000, rel=1e-9)
    assert result.clicks.sum() == pytest.approx(expected_clicks, abs=4 * np.sqrt(expected_clicks))
    assert result.displays == pytest.approx(expected_displays, abs=4 * np.sqrt(expected_displays))
    # users grouped by their A/A CTR: each group's simulated CTR is the one the A/A rates predict
    ctr = traffic.click_rate / (traffic.click_rate + traffic.no_click_rate)
    group = np.searchsorted(np.quantile(ctr, [0.2, 0.4, 0.6, 0.8]), ctr)
    clicks, displays = result.clicks.sum(axis=0), result.impressions.sum(axis=0)
    for g in range(5):
        users = group == g
        expected = 7 * traffic.click_rate[users].sum()
        assert clicks[users].sum() == pytest.approx(expected, abs=5 * np.sqrt(expected))
        assert displays[users].sum() == pytest.approx(
            7 * (traffic.click_rate + traffic.no_click_rate)[users].sum(), rel=0.05)


def test_same_seed_same_result_whatever_the_workers(traffic):
    first = run_aa_world(traffic, runs=60, seed=5, workers=1)
    second = run_aa_world(traffic, runs=60, seed=5, workers=2)
    for name in ("delta", "naive", "sequential"):
        np.testing.assert_array_equal(first.p_values[name], second.p_values[name])
    assert first.summary() == second.summary()
    other = run_aa_world(traffic, runs=60, seed=6)
    assert not np.array_equal(first.p_values["delta"], other.p_values["delta"])
    described = first.summary()["traffic"]
    assert described["source"] == "world" and described["policy"] == "title only"
    assert described["mean_displays_per_run"] == pytest.approx(200_000, rel=0.01)
    # every user is re-bucketed per run: about half of the exposed users in each bucket
    low, high = described["mean_exposed_users_per_bucket"]
    assert low == pytest.approx(high, rel=0.03)


def test_daily_looks_never_read_above_the_final_p_value(traffic):
    result = run_aa_world(traffic, runs=80, seed=2, peeks=7)
    assert result.traffic["look_days"] == list(range(1, 8))
    # the last look is the whole experiment, so the min over looks is at most the final p-value
    assert np.all(result.p_values["delta_peeking"] <= result.p_values["delta"] + 1e-12)
    assert np.all(result.p_values["sequential_peeking"] <= result.p_values["sequential"] + 1e-12)
    with pytest.raises(ValueError, match="looks"):
        run_aa_world(traffic, runs=2, peeks=8)


def test_delta_within_band_naive_inflated_as_design_effect_predicts(traffic):
    """10,000 A/A runs on the world's traffic with a 7-day pre-period: the report's test and the
    CUPED test both reject 5 % ± 1 point; the naive one is inflated as the design effect says."""
    summary = run_aa_world(traffic, runs=10_000, seed=3, pre_days=7).summary()
    delta, naive = summary["tests"]["delta"], summary["tests"]["naive"]
    assert summary["band_meaningful"] and summary["delta_within_band"] and summary["cuped_within_band"]
    assert 0.04 <= summary["tests"]["cuped"]["false_positive_rate"] <= 0.06
    assert summary["mean_cuped_variance_reduction"] > 0.02
    assert summary["traffic"]["pre_days"] == 7
    assert delta["ci_low"] < 0.05 < delta["ci_high"]
    assert naive["ci_low"] > delta["ci_high"]
    assert summary["mean_design_effect"] > 1.2
    assert naive["ci_low"] < summary["naive_rate_predicted_by_design_effect"] < naive["ci_high"]
    assert summary["lift_ci_coverage"] == pytest.approx(0.95, abs=0.01)


def test_pre_period_leaves_the_experiment_draws_unchanged(traffic):
    plain = run_aa_world(traffic, runs=40, seed=9)
    with_pre = run_aa_world(traffic, runs=40, seed=9, pre_days=3)
    for name in ("delta", "naive", "sequential"):
        np.testing.assert_array_equal(plain.p_values[name], with_pre.p_values[name])
    assert "cuped" in with_pre.p_values and "cuped" not in plain.p_values


def test_other_policies_build(world):
    policy = make_policy(world, "personalised_sps", k=2)
    oracle = WorldAATraffic.from_world(world, policy, displays=50_000, days=2, slots=4, seed=0)
    title = WorldAATraffic.from_world(world, displays=50_000, days=2, slots=4, seed=0)
    assert oracle.description["policy"].startswith("personalised 2 SPs")
    assert oracle.description["expected_ctr"] > title.description["expected_ctr"]
    with pytest.raises(ValueError):
        WorldAATraffic.from_world(world, displays=0)


def test_abtest_aa_world_cli(tmp_path, capsys):
    config = tmp_path / "world.toml"
    config.write_text("n_users = 800\nn_ads = 400\nbehaviour_users = 10\n")
    out = tmp_path / "aa"
    args = ["abtest", "aa", "--traffic", "world", "--world-config", str(config), "--displays", "50000",
            "--days", "3", "--slots", "8", "--runs", "200", "--seed", "4"]
    rc = main(args + ["--out", str(out)])
    printed = capsys.readouterr().out
    assert "design effect" in printed and "world traffic: 800 users" in printed
    summary = json.loads((out / "aa.json").read_text())
    assert rc == (0 if summary["delta_within_band"] else 1)
    assert summary["runs"] == 200 and not summary["band_meaningful"] and summary["traffic"]["source"] == "world"
    assert summary["traffic"]["world"] == str(config)
    assert (out / "aa_pvalues.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "World traffic" in (out / "aa.md").read_text()
    main(args + ["--out", str(tmp_path / "again")])
    for name in ("aa.json", "aa.md", "aa_pvalues.png"):  # same seed -> same files
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()

    assert main(["abtest", "aa", "--world-config", str(config), "--out", str(tmp_path / "x")]) == 2
    assert "--traffic world" in capsys.readouterr().err
