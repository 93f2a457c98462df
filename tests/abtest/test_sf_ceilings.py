"""The SF task's restricted oracles (``World.sf_ceilings``), the oracle file's ceiling columns and
the posterior fit bench uses (abtest/world/sf_ceilings.py)."""
import csv

import numpy as np
import pytest

from abtest.world import sf_ceilings
from abtest.world.logs import read_world
from abtest.world.world import World, expected_sigmoid
from adpush_core.errors import UserError
from tfrs_models import metrics


def test_expected_sigmoid_matches_monte_carlo_and_the_point_mass():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(400_000)
    for mean, std in ((-3.0, 1.2), (0.5, 0.3), (-1.0, 2.5)):
        mc = np.mean(1.0 / (1.0 + np.exp(-(mean + std * z))))
        assert expected_sigmoid(mean, std) == pytest.approx(mc, abs=2e-3)
    assert expected_sigmoid([0.3], [0.0])[0] == pytest.approx(1 / (1 + np.exp(-0.3)))


def _rows(world, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, world.n_users, n)
    queries = world.sample_queries(users, rng)
    keywords = world.sample_sf_bar(queries, rng)[:, 0]
    return users, queries, keywords


def _former_ceilings(world, users, queries, keywords, theta):
    """The formulas tfrs_models/selling_point/ceilings.py computed before the world owned them
    (main 2edcbea), reading the world's private facet mask: the reference for "no figure moves"
    (on the demo world, seed 0, every SF metrics.json block of ceilings and oracle came out
    identical, overall and per segment)."""
    from abtest.world.world import PROFILE_CARDINALITY

    cfg = world.config
    profile = np.asarray(world.user_profile)
    columns = [np.ones((profile.shape[0], 1))]
    for j, card in enumerate(PROFILE_CARDINALITY):
        columns.append(np.eye(card + 1)[profile[:, j]])
    x = np.concatenate(columns, axis=1)
    latent = np.asarray(world.user_latent, np.float64)
    coef, *_ = np.linalg.lstsq(x, latent, rcond=None)
    fitted = x @ coef
    resid_cov = np.cov((latent - fitted).T)
    phi = np.asarray(world.keyword_embedding, np.float64)[keywords]
    pop = np.asarray(world.keyword_popularity, np.float64)[keywords]
    facet_mask = world._query_facet_mask  # noqa: SLF001 - the former code read it
    boost = cfg.facet_boost * facet_mask[queries, world.keyword_facet[keywords]]
    theta_mean, theta_cov = latent.mean(axis=0), np.cov(latent.T)

    def spread(cov):
        return cfg.pref_scale * np.sqrt(np.einsum("ni,ij,nj->n", phi, cov, phi))

    prior = cfg.sf_bias + pop + cfg.pref_scale * phi @ theta_mean
    plug_in = (cfg.sf_bias + world.keyword_popularity[keywords] + boost
               + cfg.pref_scale * np.sum(theta[users] * phi, axis=1))
    return {
        "popularity": expected_sigmoid(prior, spread(theta_cov)),
        "query": expected_sigmoid(prior + boost, spread(theta_cov)),
        "profile": expected_sigmoid(
            cfg.sf_bias + pop + boost + cfg.pref_scale * np.sum(fitted[users] * phi, axis=1),
            spread(resid_cov)),
        "fitted": fitted, "resid_cov": resid_cov, "plug_in": 1.0 / (1.0 + np.exp(-plug_in)),
    }


@pytest.mark.parametrize("name", ["tiny", "v1"])
def test_world_ceilings_are_the_former_formulas(tiny_world_config, name):
    config = tiny_world_config if name == "tiny" else tiny_world_config.named("v1").replace(
        n_users=500, n_ads=300, days=2, behaviour_users=100)
    world = World.build(config, seed=3)
    users, queries, keywords = _rows(world, n=5000)
    theta = np.random.default_rng(1).normal(size=np.shape(world.user_latent))
    former = _former_ceilings(world, users, queries, keywords, theta)
    new = world.sf_ceilings(users, queries, keywords)
    assert list(new) == ["popularity", "query", "profile"]
    np.testing.assert_array_equal(new["profile"], former["profile"])
    # The former code took θ̄·φ_v as a BLAS product, whose last bit depended on the row's place in
    # the batch; the world sums row by row, so only the last bits differ ...
    for ceiling in ("popularity", "query"):
        np.testing.assert_allclose(new[ceiling], former[ceiling], rtol=1e-14, atol=0)
    # ... and an impression's ceilings no longer depend on the rows scored with it.
    half = world.sf_ceilings(users[1::2], queries[1::2], keywords[1::2])
    for ceiling in new:
        np.testing.assert_array_equal(half[ceiling], new[ceiling][1::2], err_msg=ceiling)
    fitted, resid_cov = world.profile_latent_fit
    np.testing.assert_array_equal(fitted, former["fitted"])
    np.testing.assert_array_equal(resid_cov, former["resid_cov"])
    np.testing.assert_array_equal(
        sf_ceilings.posterior_scores(world, theta, users, queries, keywords), former["plug_in"])
    # the public logit parts are the world's own click model
    np.testing.assert_allclose(world.sf_logit(users, queries, keywords),
                               world.config.sf_bias + world.appeal(users, queries, keywords),
                               rtol=1e-5, atol=1e-5)


def test_facet_match_is_the_boost_appeal_adds_and_no_query_asks_for_nothing(tiny_world_config):
    world = World.build(tiny_world_config, seed=1)
    users, queries, keywords = _rows(world, n=500)
    with_boost = world.appeal(users, queries, keywords)
    without = world.appeal(users, np.full_like(queries, -1), keywords)
    np.testing.assert_allclose(with_boost - without,
                               world.config.facet_boost * world.facet_match(queries, keywords),
                               atol=1e-5)
    assert world.facet_match(queries, keywords).any()
    assert not world.facet_match(np.full(3, -1), keywords[:3]).any()


def test_profile_ceiling_is_the_oracle_when_the_profile_explains_everything(tiny_world_config):
    world = World.build(tiny_world_config.replace(profile_share=1.0), seed=1)
    scores = sf_ceilings.sf_ceiling_scores(world, *_rows(world))
    np.testing.assert_allclose(scores["profile"], scores["oracle"], rtol=1e-4, atol=1e-6)
    fitted, resid = world.profile_latent_fit
    assert np.abs(resid).max() < 1e-10


def test_ceilings_are_ordered_and_below_the_oracle(tiny_world_config):
    world = World.build(tiny_world_config.replace(n_users=3000), seed=2)
    users, queries, keywords = _rows(world, n=60_000)
    scores = sf_ceilings.sf_ceiling_scores(world, users, queries, keywords)
    labels = np.random.default_rng(5).random(users.size) < scores["oracle"]
    aucs = {name: metrics.auc(labels, s) for name, s in scores.items()}
    assert aucs["popularity"] < aucs["query"] < aucs["profile"] < aucs["oracle"], aucs
    # Each ceiling is calibrated: its mean probability matches the click rate.
    for name in ("popularity", "query", "profile"):
        assert scores[name].mean() == pytest.approx(labels.mean(), rel=0.08), name
    # Without a query boost or user preference the keyword's popularity is all there is.
    flat = World.build(tiny_world_config.replace(pref_scale=0.0, facet_boost=0.0), seed=2)
    flat_scores = sf_ceilings.sf_ceiling_scores(flat, *_rows(flat))
    np.testing.assert_allclose(flat_scores["popularity"], flat_scores["oracle"], rtol=1e-5)


def test_the_oracle_file_holds_the_world_ceilings_of_every_logged_impression(tiny_world_logs):
    with (tiny_world_logs / "oracle" / "sf_impressions.csv").open() as fh:
        logged = {int(r["impression_id"]): r for r in csv.DictReader(fh)}
    ids = np.array(sorted(logged)[::7][:500])[::-1]  # any order, any subset
    scores = sf_ceilings.ceilings_for_impressions(tiny_world_logs, ids)
    assert set(scores) == {"popularity", "query", "profile", "oracle"}
    np.testing.assert_allclose(scores["oracle"], [float(logged[i]["p_click"]) for i in ids],
                               atol=1e-6)
    for name in ("popularity", "query", "profile"):  # written unrounded: the very numbers
        np.testing.assert_array_equal(
            scores[name], [float(logged[i][f"ceiling_{name}"]) for i in ids], err_msg=name)
    with pytest.raises(UserError, match="not in"):
        sf_ceilings.ceilings_for_impressions(tiny_world_logs, [10**12])
    world = read_world(tiny_world_logs)
    rows = sf_ceilings.read_log_rows(tiny_world_logs, world, "sf", ids)
    users, queries, keywords = sf_ceilings.read_sf_impressions(tiny_world_logs, world, np.sort(ids))
    np.testing.assert_array_equal(rows["users"], users)  # the log's order: by impression id
    np.testing.assert_array_equal(rows["keywords"], keywords)
    ad = sf_ceilings.read_log_rows(tiny_world_logs, world, "ad", np.arange(50))
    assert ad["ads"].size == 50 and set(ad) == {"users", "queries", "clicked", "ads", "positions"}


def test_read_world_needs_a_manifest(tmp_path):
    with pytest.raises(UserError, match="holds no manifest.json"):
        read_world(tmp_path)


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
    fitted, _ = world.profile_latent_fit
    truth = np.asarray(world.user_latent)
    empty = {k: v[:0] for k, v in sf.items()}
    np.testing.assert_allclose(sf_ceilings.posterior_latent(world, empty, steps=5), fitted,
                               atol=1e-5)
    prior_error = np.mean((fitted - truth) ** 2)
    sf_error = np.mean((sf_ceilings.posterior_latent(world, sf, steps=150) - truth) ** 2)
    both_error = np.mean((sf_ceilings.posterior_latent(world, sf, ad, steps=150) - truth) ** 2)
    assert sf_error < 0.6 * prior_error and both_error < 0.6 * prior_error
    theta = sf_ceilings.posterior_latent(world, sf, steps=150)
    np.testing.assert_allclose(
        sf_ceilings.posterior_scores(world, truth, users[:50], queries[:50], keywords[:50]),
        world.p_sf_click(users[:50], queries[:50], keywords[:50]), rtol=1e-4)
    assert theta.shape == truth.shape
