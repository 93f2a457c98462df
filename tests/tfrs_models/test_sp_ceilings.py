"""Restricted oracles of the SF task (tfrs_models/selling_point/ceilings.py)."""
import csv

import numpy as np
import pytest

from abtest.world.world import World
from tfrs_models import metrics
from tfrs_models.selling_point import ceilings


def test_expected_sigmoid_matches_monte_carlo_and_the_point_mass():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400_000)
    for mean, std in ((-3.0, 1.2), (0.5, 0.3), (-1.0, 2.5)):
        mc = np.mean(1.0 / (1.0 + np.exp(-(mean + std * z))))
        assert ceilings.expected_sigmoid(mean, std) == pytest.approx(mc, abs=2e-3)
    assert ceilings.expected_sigmoid([0.3], [0.0])[0] == pytest.approx(1 / (1 + np.exp(-0.3)))


def _rows(world, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, world.n_users, n)
    queries = world.sample_queries(users, rng)
    keywords = world.sample_sf_bar(queries, rng)[:, 0]
    return users, queries, keywords


def test_profile_ceiling_is_the_oracle_when_the_profile_explains_everything(tiny_world_config):
    world = World.build(tiny_world_config.replace(profile_share=1.0), seed=1)
    scores = ceilings.sf_ceiling_scores(world, *_rows(world))
    np.testing.assert_allclose(scores["profile"], scores["oracle"], rtol=1e-4, atol=1e-6)
    fitted, resid = ceilings.profile_posterior_mean(world)
    assert np.abs(resid).max() < 1e-10


def test_ceilings_are_ordered_and_below_the_oracle(tiny_world_config):
    world = World.build(tiny_world_config.replace(n_users=3000), seed=2)
    users, queries, keywords = _rows(world, n=60_000)
    scores = ceilings.sf_ceiling_scores(world, users, queries, keywords)
    labels = np.random.default_rng(5).random(users.size) < scores["oracle"]
    aucs = {name: metrics.auc(labels, s) for name, s in scores.items()}
    assert aucs["popularity"] < aucs["query"] < aucs["profile"] < aucs["oracle"], aucs
    # Each ceiling is calibrated: its mean probability matches the click rate.
    for name in ("popularity", "query", "profile"):
        assert scores[name].mean() == pytest.approx(labels.mean(), rel=0.08), name
    # Without a query boost or user preference the keyword's popularity is all there is.
    flat = World.build(tiny_world_config.replace(pref_scale=0.0, facet_boost=0.0), seed=2)
    flat_scores = ceilings.sf_ceiling_scores(flat, *_rows(flat))
    np.testing.assert_allclose(flat_scores["popularity"], flat_scores["oracle"], rtol=1e-5)


def test_ceilings_from_logs_join_impressions_and_reproduce_the_logged_oracle(tiny_world_logs):
    with (tiny_world_logs / "oracle" / "sf_impressions.csv").open() as fh:
        logged = {int(r["impression_id"]): float(r["p_click"]) for r in csv.DictReader(fh)}
    ids = np.array(sorted(logged)[::7][:500])[::-1]  # any order, any subset
    scores = ceilings.ceilings_for_impressions(tiny_world_logs, ids)
    assert set(scores) == {"popularity", "query", "profile", "oracle"}
    np.testing.assert_allclose(scores["oracle"], [logged[i] for i in ids], atol=1e-6)
    with pytest.raises(Exception, match="not in"):
        ceilings.ceilings_for_impressions(tiny_world_logs, [10**12])
    world = ceilings.load_world(tiny_world_logs)
    rows = ceilings.read_log_rows(tiny_world_logs, world, "sf", ids)
    users, queries, keywords = ceilings.read_sf_impressions(tiny_world_logs, world, np.sort(ids))
    np.testing.assert_array_equal(rows["users"], users)  # the log's order: by impression id
    np.testing.assert_array_equal(rows["keywords"], keywords)
    ad = ceilings.read_log_rows(tiny_world_logs, world, "ad", np.arange(50))
    assert ad["ads"].size == 50 and set(ad) == {"users", "queries", "clicked", "ads", "positions"}


@pytest.mark.slow  # ~40 s on the loaded 2-core box
def test_posterior_latent_moves_from_the_profile_prior_towards_the_true_latent(tiny_world_config):
    world = World.build(tiny_world_config.replace(n_users=60, pref_scale=2.0), seed=4)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(world.n_users), 300)
    queries = world.sample_queries(users, rng)
    keywords = world.sample_sf_bar(queries, rng)[:, 0]
    clicked = (rng.random(users.size) < world.p_sf_click(users, queries, keywords))
    sf = {"users": users, "queries": queries, "keywords": keywords,
          "clicked": clicked.astype(np.float32)}
    ads, positions = world.sample_ads(queries, 1, rng)
    ads, positions = ads[:, 0], positions[:, 0]
    ad = {"users": users, "queries": queries, "ads": ads, "positions": positions,
          "clicked": (rng.random(users.size) < world.p_ad_click(users, queries, ads, positions)
                      ).astype(np.float32)}
    fitted, _ = ceilings.profile_posterior_mean(world)
    truth = np.asarray(world.user_latent)
    empty = {k: v[:0] for k, v in sf.items()}
    np.testing.assert_allclose(ceilings.posterior_latent(world, empty, steps=5), fitted,
                               atol=1e-5)
    prior_error = np.mean((fitted - truth) ** 2)
    sf_error = np.mean((ceilings.posterior_latent(world, sf, steps=150) - truth) ** 2)
    both_error = np.mean((ceilings.posterior_latent(world, sf, ad, steps=150) - truth) ** 2)
    assert sf_error < 0.6 * prior_error and both_error < 0.6 * prior_error
    theta = ceilings.posterior_latent(world, sf, steps=150)
    np.testing.assert_allclose(
        ceilings.posterior_scores(world, truth, users[:50], queries[:50], keywords[:50]),
        world.p_sf_click(users[:50], queries[:50], keywords[:50]), rtol=1e-4)
    assert theta.shape == truth.shape
