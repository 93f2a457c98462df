"""bench/sp_ab_ceilings.py --expected: expected A/B lifts without the bucket split and draws."""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def _world():
    from abtest.world.config import WorldConfig
    from abtest.world.world import World

    return World.build(WorldConfig.tiny().replace(n_users=400), seed=5)


class _PopularScorer:
    """Ranks an ad's attributes by overall clicks: personalised_sps with it is popular_sps."""

    name = "popular"

    def __init__(self, keyword_clicks):
        self.keyword_clicks = keyword_clicks

    def score(self, users, queries, ads, candidates):
        return self.keyword_clicks[np.maximum(candidates, 0)].astype(np.float64)


def test_a_scorer_that_ranks_by_popularity_has_no_no2_lift_and_the_oracle_leads():
    from abtest.simulator.policies import OracleScorer, keyword_click_counts
    from abtest.simulator.scenario import load_scenario
    from abtest.simulator.traffic import DisplayPool
    from sp_ab_ceilings import expected_lifts

    world, seed, slots = _world(), 3, 6
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))  # expected_lifts' stream
    DisplayPool.sample(world, slots, rng)
    clicks = keyword_click_counts(world, rng)
    lifts = expected_lifts(world, load_scenario("001"), [_PopularScorer(clicks), OracleScorer(world)],
                           seed, slots)
    # No.2 is personalised vs popular SPs: the same choices give the same click probabilities
    assert lifts["popular"]["No.2"] == 0.0
    assert lifts["oracle"]["No.2"] > 0.0
    assert lifts["oracle"]["No.1"] > lifts["popular"]["No.1"] > 0.0
    # the highlight (No.3) and the SP count (No.5: 2 SPs beat 1) act for either ranking
    assert lifts["oracle"]["No.3"] > 0.0 and lifts["popular"]["No.3"] > 0.0
    assert lifts["oracle"]["No.5"] < 0.0


def test_expected_lift_is_the_activity_weighted_click_rate_ratio():
    """No.1 by hand: every user's contexts under title-only and under the oracle's 2 SPs."""
    from abtest.simulator.policies import OracleScorer, Policy
    from abtest.simulator.scenario import load_scenario
    from abtest.simulator.traffic import DisplayPool
    from sp_ab_ceilings import expected_lifts

    world, seed, slots = _world(), 4, 5
    lifts = expected_lifts(world, load_scenario("001"), [OracleScorer(world)], seed, slots)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pool = DisplayPool.sample(world, slots, rng)
    users = np.repeat(np.arange(world.n_users), slots)
    q, a, pos = pool.queries.ravel(), pool.ads.ravel(), pool.positions.ravel()
    none = world.p_ad_click_with_sps(users, q, a, pos, np.full((users.size, 1), -1), False)
    sps = Policy("personalised_sps", k=2, scorer=OracleScorer(world)).choose(world, users, q, a, rng)
    two = world.p_ad_click_with_sps(users, q, a, pos, sps, False)
    weight = np.repeat(np.asarray(world.user_activity, np.float64), slots)
    expected = (weight @ two) / (weight @ none) - 1.0
    assert abs(lifts["oracle"]["No.1"] - expected) < 1e-12


def test_expected_options_name_what_is_missing(tmp_path, capsys):
    import pytest

    import sp_ab_ceilings

    for argv, message in (
            (["--run", str(tmp_path), "--blank", "user_id"], "--model and --blank go with --expected"),
            (["--run", str(tmp_path), "--expected", "--model", str(tmp_path / "nowhere")],
             "no SavedModel (saved_model.pb) in"),
            (["--run", str(tmp_path), "--expected"], "has no exported version")):
        with pytest.raises(SystemExit) as exit_info:
            sp_ab_ceilings.main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
