"""The A/B simulator: bucket assignment, policies, traffic, scenarios and the run command."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from abtest.simulator.buckets import assign_buckets, hash_unit
from abtest.simulator.policies import OracleScorer, Policy, keyword_click_counts, top_k_by_score
from abtest.simulator.scenario import load_scenario, run_scenario
from abtest.simulator.traffic import DisplayPool, Experiment, simulate_experiment
from abtest.world import World, WorldConfig
from abtest.world.world import PAD
from adpush_core.errors import UserError


@pytest.fixture(scope="module")
def world():
    # the A/B statistics are calibrated on the v1 world's traffic (abtest/world/configs/v1.toml)
    return World.build(WorldConfig.tiny(WorldConfig.named("v1")).replace(n_users=3000), seed=11)


@pytest.fixture(scope="module")
def pool(world):
    return DisplayPool.sample(world, 16, np.random.default_rng(0))


# --- buckets ----------------------------------------------------------------------------------
def test_bucket_assignment_is_stable_near_the_split_and_salted():
    users = np.arange(200_000)
    first = assign_buckets(users, "exp-1", (0.5, 0.5))
    np.testing.assert_array_equal(first, assign_buckets(users, "exp-1", (0.5, 0.5)))
    # the same user keeps its bucket when the population changes (stable across days)
    np.testing.assert_array_equal(first[:1000], assign_buckets(users[:1000], "exp-1", (0.5, 0.5)))
    counts = np.bincount(first)
    assert scipy_stats.chisquare(counts).pvalue > 0.001
    other = assign_buckets(users, "exp-2", (0.5, 0.5))
    agreement = np.mean(first == other)
    assert abs(agreement - 0.5) < 0.01, "different salts must give independent assignments"
    uneven = np.bincount(assign_buckets(users, "exp-1", (0.2, 0.3, 0.5))) / users.size
    np.testing.assert_allclose(uneven, [0.2, 0.3, 0.5], atol=0.005)


def test_hash_unit_is_uniform():
    u = hash_unit(np.arange(100_000), "salt")
    assert u.min() >= 0 and u.max() < 1
    assert scipy_stats.kstest(u, "uniform").pvalue > 0.001


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="at least two positive weights"):
        assign_buckets(np.arange(5), "s", (1.0,))


# --- policies ---------------------------------------------------------------------------------
def test_top_k_by_score_hand_case():
    candidates = np.array([[4, 7, 9, PAD], [3, PAD, PAD, PAD]])
    scores = np.array([[0.1, 0.9, 0.5, 5.0], [0.2, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(top_k_by_score(candidates, scores, 2), [[7, 9], [3, PAD]])


def test_policies_add_only_true_attributes(world):
    rng = np.random.default_rng(1)
    users = rng.integers(0, world.n_users, 500)
    queries = world.sample_queries(users, rng)
    ads = world.sample_ads(queries, 1, rng)[0][:, 0]
    clicks = keyword_click_counts(world, rng)
    for policy in (Policy("popular_sps", 2, keyword_clicks=clicks), Policy("random_sps", 3),
                   Policy("personalised_sps", 2, scorer=OracleScorer(world))):
        sps = policy.choose(world, users, queries, ads, rng)
        assert sps.shape == (500, policy.k)
        for row, ad in zip(sps, ads):
            assert set(row[row != PAD]) <= set(world.ad_attributes[ad])
    assert (Policy("title_only").choose(world, users, queries, ads, rng) == PAD).all()


def test_popular_policy_picks_the_most_clicked_attributes(world):
    clicks = np.zeros(world.config.n_keywords)
    ad = 5
    attrs = world.ad_attributes[ad][world.ad_attributes[ad] != PAD]
    clicks[attrs[-1]], clicks[attrs[0]] = 100, 50
    sps = Policy("popular_sps", 2, keyword_clicks=clicks).choose(
        world, np.array([0]), np.array([0]), np.array([ad]), np.random.default_rng(0))
    np.testing.assert_array_equal(sps[0], [attrs[-1], attrs[0]])


def test_bad_policies_are_rejected():
    with pytest.raises(ValueError, match="unknown policy"):
        Policy("clever_sps", 2)
    with pytest.raises(ValueError, match="needs a scorer"):
        Policy("personalised_sps", 2)
    with pytest.raises(ValueError, match="k in 1..5"):
        Policy("random_sps", 0)


# --- traffic ----------------------------------------------------------------------------------
def test_displays_hit_the_budget_and_clicks_follow_the_true_probability(world, pool):
    experiment = Experiment("aa", Policy("title_only"), Policy("title_only"),
                            displays=2_000_000, days=4)
    result = simulate_experiment(world, pool, experiment, np.random.default_rng(3))
    assert abs(result.displays - 2_000_000) < 5 * np.sqrt(2_000_000)
    # expected clicks = Σ displays × p: recompute p for the pool and compare within 5 s.e.
    users = np.repeat(np.arange(world.n_users), pool.slots)
    p = world.p_ad_click(users, pool.queries.ravel(), pool.ads.ravel(), pool.positions.ravel())
    expected_ctr = np.average(p, weights=np.repeat(world.user_activity, pool.slots))
    observed_ctr = result.clicks.sum() / result.displays
    se = np.sqrt(expected_ctr * (1 - expected_ctr) / result.displays)
    assert abs(observed_ctr - expected_ctr) < 5 * se * 3  # ×3: users' activity is random too


def test_same_seed_same_result_and_personalised_beats_title_only(world, pool):
    experiment = Experiment("No.1", Policy("title_only"),
                            Policy("personalised_sps", 2, scorer=OracleScorer(world)),
                            displays=3_000_000, days=3)
    a = simulate_experiment(world, pool, experiment, np.random.default_rng(5))
    b = simulate_experiment(world, pool, experiment, np.random.default_rng(5))
    np.testing.assert_array_equal(a.clicks, b.clicks)
    from abtest.stats.comparison import compare_all

    comparison = compare_all(a.stats(), "control")[0]
    assert comparison.relative_lift > 0.05 and comparison.p_value < 1e-3
    assert comparison.srm_p > 0.001
    per_day = a.daily_stats()
    assert len(per_day) == 3
    total_m = sum(d["treatment"].sum_m + d["control"].sum_m for d in per_day)
    assert total_m == a.displays


# --- scenarios --------------------------------------------------------------------------------
def test_builtin_001_scenario_has_the_five_experiments():
    scenario = load_scenario("001")
    names = [(e["control"]["label"], e["treatment"]["label"]) for e in scenario.experiments]
    assert names == [("TSS", "PSPSS"), ("NSPSS", "PSPSS"), ("No highlight", "Highlight SPs"),
                     ("Add 2 SPs", "Add 3 SPs"), ("Add 2 SPs", "Add 1 SP")]
    assert all(20_000_000 <= e["displays"] <= 41_000_000 for e in scenario.experiments)


@pytest.mark.parametrize("text, message", [
    ("[[experiment]]\nname='a'\ncontrol={policy='title_only'}\n", "missing 'treatment'"),
    ("[[experiment]]\nname='a'\ncontrol={policy='nope'}\ntreatment={policy='title_only'}\n",
     "policy 'nope' is not one of"),
    ("[defaults]\nbogus=1\n[[experiment]]\nname='a'\ncontrol={policy='title_only'}\n"
     "treatment={policy='title_only'}\n", "unknown key 'bogus'"),
    ("[defaults]\ndays=3\n", "no \\[\\[experiment\\]\\] entries"),
])
def test_bad_scenarios_name_the_problem(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_scenario(path)


def test_scenario_report_is_deterministic(tmp_path, world):
    path = tmp_path / "s.toml"
    path.write_text(
        "[defaults]\ndays = 3\nslots = 8\n"
        "[[experiment]]\nname = 'No.1'\ndisplays = 1_000_000\n"
        "control = { label = 'TSS', policy = 'title_only' }\n"
        "treatment = { label = 'PSPSS', policy = 'personalised_sps', k = 2 }\n"
        "[[experiment]]\nname = 'No.3'\ndisplays = 1_000_000\n"
        "control = { label = 'plain', policy = 'personalised_sps', k = 2 }\n"
        "treatment = { label = 'hl', policy = 'personalised_sps', k = 2, highlight = true }\n")
    scenario = load_scenario(path)
    first = run_scenario(world, scenario, OracleScorer(world), 3, tmp_path / "a", progress=False)
    second = run_scenario(world, scenario, OracleScorer(world), 3, tmp_path / "b", progress=False)
    a = json.loads((tmp_path / "a/report.json").read_text())
    b = json.loads((tmp_path / "b/report.json").read_text())
    assert a == b
    assert [c["treatment"] for c in a["comparisons"]] == ["No.1 PSPSS", "No.3 hl"]
    assert len(a["per_day"]) == 6
    assert first["comparisons"][0].relative_lift > 0
    assert (tmp_path / "a/stats/No.1.csv").read_text().startswith("bucket,n,sum_c,")
    assert "<img" in (tmp_path / "a/report.html").read_text()


def test_abtest_run_cli_writes_the_report_and_its_stats_are_analysable(tmp_path):
    config = tmp_path / "world.toml"
    config.write_text("n_users = 800\nn_ads = 400\nbehaviour_users = 10\n")
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        "[defaults]\ndays = 2\nslots = 4\n[[experiment]]\nname = 'No.2'\ndisplays = 200_000\n"
        "control = { label = 'NSPSS', policy = 'popular_sps', k = 2 }\n"
        "treatment = { label = 'PSPSS', policy = 'personalised_sps', k = 2 }\n")
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "adpush.cli", "abtest", "run", "--scenario", str(scenario),
           "--world-config", str(config), "--out", str(out), "--no-progress", "--seed", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "No.2 PSPSS" in result.stdout and (out / "report.html").is_file()
    analyzed = subprocess.run(
        [sys.executable, "-m", "adpush.cli", "abtest", "analyze", "--input",
         str(out / "stats/No.2.csv"), "--control", "No.2 NSPSS", "--out", str(tmp_path / "a.json")],
        capture_output=True, text=True)
    assert analyzed.returncode == 0, analyzed.stderr
    reanalysed = json.loads((tmp_path / "a.json").read_text())
    report = json.loads((out / "report.json").read_text())["comparisons"][0]
    comparison = reanalysed["comparisons"][0] if "comparisons" in reanalysed else reanalysed[0]
    assert comparison["p_value"] == pytest.approx(report["p_value"], rel=1e-9)


def test_sf_click_history_keeps_the_latest_clicks_most_recent_first(tmp_path):
    from abtest.simulator.scorers import sf_click_history

    rows = ["impression_id,user_id,query,sf_keyword,day,ts,clicked"]
    clicks = {0: ["a", "b", "c", "d"], 2: ["x"]}  # in time order
    i = 0
    for user, keywords in clicks.items():
        for kw in keywords:
            rows += [f"{i},{user},cat_00,{kw},0,{100 + i},1", f"{i + 1},{user},cat_00,no_{kw},0,{100 + i},0"]
            i += 2
    rows.append(f"{i},7,cat_00,beyond_n_users,0,999,1")
    (tmp_path / "sf_impressions.csv").write_text("\n".join(rows) + "\n")
    history = sf_click_history(tmp_path, n_users=4, length=3)
    assert history.tolist() == ["d c b", "", "x", ""]
    with pytest.raises(UserError, match="sf_impressions.csv not found"):
        sf_click_history(tmp_path / "missing", n_users=4)


def test_ad_title_history_is_the_clicked_titles_most_recent_ad_first(tmp_path):
    """What build-data writes as history_ad_title_tokens: whole titles, latest ad first, capped."""
    from abtest.simulator.scorers import ad_title_history

    (tmp_path / "ads.csv").write_text("ad_id,category,title,attributes\n"
                                      "0,1,c01_w00 sp_a,sp_a\n1,1,sp_b f001 c01_w02,sp_b\n2,2,sp_c,sp_c\n")
    (tmp_path / "ad_impressions.csv").write_text(
        "impression_id,user_id,query,ad_id,position,day,ts,clicked\n"
        "0,0,cat_01,0,1,0,100,1\n1,0,cat_01,2,2,0,101,0\n2,0,cat_01,1,1,1,200,1\n"
        "3,1,cat_02,2,1,0,150,1\n4,9,cat_02,2,1,0,150,1\n")
    history = ad_title_history(tmp_path, n_users=3, length=4)
    assert history.tolist() == ["sp_b f001 c01_w02 c01_w00", "sp_c", ""]
