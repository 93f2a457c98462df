"""Restricted oracles ("ceilings") of the SF click task: what a model could reach at best.

The world's SF click model (``abtest.world.world``) is
``logit = sf_bias + pref_scale·θ_u·φ_v + popularity_v + facet_boost·[facet(v) ∈ facets(q)]``
with ``θ_u`` = profile-table rows (``profile_share`` of its variance) + a private latent. A model
fed profile, query and keyword, but only a handful of SF clicks per user, cannot know the private
part. Each ceiling scores a test impression with the Bayes-optimal probability *given a restricted
information set*, using the world's true parameters:

- ``popularity``: the keyword only — ``E_θ σ(sf_bias + popularity_v + pref·θ·φ_v)``;
- ``query``: + the facet boost of the query's modifiers;
- ``profile``: + ``E[θ_u | profile]`` (least squares of ``θ`` on one-hot profile fields over all
  users — the generating structure is additive, so this recovers it), the rest integrated out;
- ``oracle``: the true ``p_sf_click`` (everything, incl. the private latent).

Integrating the unknown part out (Gauss–Hermite over ``N(0, pref²·φ_vᵀ Σ φ_v)``) rather than
plugging in its mean matters: the spread differs per keyword, and so does ``E σ``.
A model far below ``profile`` is at fault; the gap between ``profile`` and ``oracle`` is the
private latent, which only per-user data (SF or ad clicks) can reveal.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adpush_core.tfenv import import_tensorflow
from adpush_core.errors import UserError

CEILINGS = ("popularity", "query", "profile")
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(24)


def load_world(logs_dir):
    """The ``World`` that wrote ``logs_dir`` (config and seed from its ``manifest.json``)."""
    from abtest.world.config import WorldConfig  # noqa: PLC0415
    from abtest.world.world import World  # noqa: PLC0415

    path = Path(logs_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist; ceilings need the simulate-logs output")
    params = json.loads(path.read_text())["parameters"]
    config = WorldConfig.from_manifest(params["world"], where=str(path))
    return World.build(config, int(params["seed"]))


def expected_sigmoid(mean, std) -> np.ndarray:
    """``E σ(mean + std·Z)``, ``Z ~ N(0, 1)``, elementwise (24-point Gauss–Hermite)."""
    mean = np.asarray(mean, np.float64)[..., None]
    std = np.asarray(std, np.float64)[..., None]
    x = mean + std * np.sqrt(2.0) * _NODES
    return (_WEIGHTS / np.sqrt(np.pi) * (1.0 / (1.0 + np.exp(-x)))).sum(axis=-1)


def profile_posterior_mean(world) -> tuple[np.ndarray, np.ndarray]:
    """``(E[θ_u | profile] (U, r), residual covariance (r, r))`` by least squares of the latent on
    one-hot profile fields over all users."""
    from abtest.world.world import PROFILE_CARDINALITY  # noqa: PLC0415

    profile = np.asarray(world.user_profile)
    columns = [np.ones((profile.shape[0], 1))]
    for j, card in enumerate(PROFILE_CARDINALITY):
        columns.append(np.eye(card + 1)[profile[:, j]])
    x = np.concatenate(columns, axis=1)
    latent = np.asarray(world.user_latent, np.float64)
    coef, *_ = np.linalg.lstsq(x, latent, rcond=None)
    fitted = x @ coef
    return fitted, np.cov((latent - fitted).T)


def sf_ceiling_scores(world, users, queries, keywords) -> dict:
    """``{ceiling name: [N] probability}`` for SF impressions given as world ids
    (plus ``"oracle"``, the true probability)."""
    cfg = world.config
    users, queries, keywords = (np.asarray(a, np.int64) for a in (users, queries, keywords))
    phi = np.asarray(world.keyword_embedding, np.float64)[keywords]               # (N, r)
    pop = np.asarray(world.keyword_popularity, np.float64)[keywords]
    facet_mask = world._query_facet_mask  # noqa: SLF001 - the world's own definition of the boost
    boost = cfg.facet_boost * facet_mask[queries, world.keyword_facet[keywords]]
    latent = np.asarray(world.user_latent, np.float64)
    theta_mean, theta_cov = latent.mean(axis=0), np.cov(latent.T)
    fitted, resid_cov = profile_posterior_mean(world)

    def spread(cov):
        return cfg.pref_scale * np.sqrt(np.einsum("ni,ij,nj->n", phi, cov, phi))

    prior = cfg.sf_bias + pop + cfg.pref_scale * phi @ theta_mean
    return {
        "popularity": expected_sigmoid(prior, spread(theta_cov)),
        "query": expected_sigmoid(prior + boost, spread(theta_cov)),
        "profile": expected_sigmoid(
            cfg.sf_bias + pop + boost + cfg.pref_scale * np.sum(fitted[users] * phi, axis=1),
            spread(resid_cov)),
        "oracle": np.asarray(world.p_sf_click(users, queries, keywords), np.float64),
    }


def read_sf_impressions(logs_dir, world, impression_ids) -> tuple[np.ndarray, ...]:
    """``(users, queries, keywords)`` world ids of the given SF impressions, in that order."""
    import pandas as pd  # noqa: PLC0415

    path = Path(logs_dir) / "sf_impressions.csv"
    frame = pd.read_csv(path, usecols=["impression_id", "user_id", "query", "sf_keyword"],
                        index_col="impression_id")
    ids = np.asarray(impression_ids, np.int64)
    missing = ~np.isin(ids, frame.index.to_numpy())
    if missing.any():
        raise UserError(f"{int(missing.sum())} impressions (e.g. {ids[missing][:3].tolist()}) "
                        f"are not in {path}")
    rows = frame.loc[ids]
    query_index = {t: i for i, t in enumerate(world.query_texts)}
    keyword_index = {t: i for i, t in enumerate(world.keyword_names)}
    try:
        queries = np.array([query_index[q] for q in rows["query"]], np.int64)
        keywords = np.array([keyword_index[k] for k in rows["sf_keyword"]], np.int64)
    except KeyError as err:
        raise UserError(f"{path}: {err} is not a query/keyword of the manifest's world") from err
    return rows["user_id"].to_numpy(np.int64), queries, keywords


def ceilings_for_impressions(logs_dir, impression_ids, world=None) -> dict:
    """``{name: [N] probability}`` of every ceiling (and ``oracle``) for SF impressions."""
    world = world if world is not None else load_world(logs_dir)
    return sf_ceiling_scores(world, *read_sf_impressions(logs_dir, world, impression_ids))


# -- what the users' own train clicks reveal about their private latent -----------------------
def read_log_rows(logs_dir, world, kind: str, impression_ids) -> dict:
    """World-id arrays of the ``kind`` (``"sf"`` or ``"ad"``) impressions with these ids (e.g.
    a split's, read from its TFRecords: the split's ``day`` column need not be the log's)."""
    import pandas as pd  # noqa: PLC0415

    if kind == "sf":
        frame = pd.read_csv(Path(logs_dir) / "sf_impressions.csv",
                            usecols=["impression_id", "user_id", "query", "sf_keyword", "clicked"])
    else:
        frame = pd.read_csv(Path(logs_dir) / "ad_impressions.csv",
                            usecols=["impression_id", "user_id", "query", "ad_id", "position",
                                     "clicked"])
    frame = frame[frame["impression_id"].isin(np.asarray(impression_ids, np.int64))]
    query_index = {t: i for i, t in enumerate(world.query_texts)}
    out = {"users": frame["user_id"].to_numpy(np.int64),
           "queries": frame["query"].map(query_index).to_numpy(np.int64),
           "clicked": frame["clicked"].to_numpy(np.float32)}
    if kind == "sf":
        keyword_index = {t: i for i, t in enumerate(world.keyword_names)}
        out["keywords"] = frame["sf_keyword"].map(keyword_index).to_numpy(np.int64)
    else:
        out["ads"] = frame["ad_id"].to_numpy(np.int64)
        out["positions"] = frame["position"].to_numpy(np.int64)
    return out


def posterior_latent(world, sf: dict, ad: dict | None = None, steps: int = 300,
                     learning_rate: float = 0.05, chunk: int = 400_000) -> np.ndarray:
    """MAP of every user's ``θ_u`` given their logged clicks, with the world's true parameters.

    Prior ``N(E[θ|profile], residual covariance)``; likelihood: the SF rows ``sf`` and,
    if given, the ad rows ``ad`` (through the attention-weighted title appeal). Full-batch Adam.
    This is what a model that knew the world's structure exactly could learn about each user
    from the same per-user data — the ceiling of any learned user representation.
    """
    tf = import_tensorflow()
    cfg = world.config
    fitted, resid_cov = profile_posterior_mean(world)
    precision = tf.constant(np.linalg.inv(resid_cov), tf.float32)
    prior_mean = tf.constant(fitted, tf.float32)
    phi = tf.constant(world.keyword_embedding, tf.float32)
    facet_mask = world._query_facet_mask  # noqa: SLF001

    def sf_parts(rows):
        kw = rows["keywords"]
        const = (cfg.sf_bias + world.keyword_popularity[kw]
                 + cfg.facet_boost * facet_mask[rows["queries"], world.keyword_facet[kw]])
        return [tuple(tf.constant(x) for x in (
            rows["users"][s], kw[s], const[s].astype(np.float32), rows["clicked"][s]))
            for s in _slices(kw.size, chunk)]

    def ad_parts(rows):
        ads, queries = rows["ads"], rows["queries"]
        tokens = world.ad_title[ads]
        pad = tokens == -1
        is_sp = ~pad & (tokens < cfg.n_keywords)
        is_cat = (tokens >= cfg.n_keywords) & (
            tokens < cfg.n_keywords + cfg.n_categories * cfg.category_words)
        safe = np.where(is_sp, tokens, 0)
        r_const = np.where(is_cat, cfg.category_word_appeal, cfg.filler_appeal)
        sp_const = (world.keyword_popularity[safe]
                    + cfg.facet_boost * facet_mask[queries[:, None], world.keyword_facet[safe]])
        r_const = np.where(is_sp, sp_const, r_const).astype(np.float32)
        relevant = world.ad_category[ads] == world.query_category[queries]
        base = (cfg.ad_bias + world.ad_quality[ads] - cfg.position_decay * (rows["positions"] - 1)
                - cfg.off_category_penalty * ~relevant).astype(np.float32)
        return [tuple(tf.constant(x) for x in (
            rows["users"][s], safe[s], is_sp[s], pad[s], r_const[s], base[s], rows["clicked"][s]))
            for s in _slices(ads.size, chunk)]

    sf_chunks = sf_parts(sf)
    ad_chunks = ad_parts(ad) if ad is not None else []
    theta = tf.Variable(prior_mean)
    optimizer = tf.keras.optimizers.Adam(learning_rate)

    @tf.function
    def sf_loss(users, kw, const, y):
        logit = const + cfg.pref_scale * tf.reduce_sum(
            tf.gather(theta, users) * tf.gather(phi, kw), axis=1)
        return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(y, logit))

    @tf.function
    def ad_loss(users, safe, is_sp, pad, r_const, base, y):
        scores = tf.einsum("nr,nlr->nl", tf.gather(theta, users), tf.gather(phi, safe))
        if cfg.ad_clicks_use_sp_appeal:
            r = tf.where(is_sp, r_const + cfg.pref_scale * scores, r_const)
        else:  # the ablation world: ad clicks do not depend on θ (world.title_appeal)
            r = tf.where(is_sp, tf.cast(world.keyword_popularity.mean(), tf.float32), r_const)
        logits = tf.where(pad, -1e9, cfg.title_temperature * r)
        w = tf.nn.softmax(logits, axis=1)
        appeal = tf.reduce_sum(tf.where(pad, 0.0, w * r), axis=1)
        logit = base + cfg.title_weight * appeal
        return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(y, logit))

    @tf.function
    def prior_loss():
        d = theta - prior_mean
        return 0.5 * tf.reduce_sum((d @ precision) * d)

    for _ in range(steps):
        with tf.GradientTape() as tape:
            total = prior_loss()
            for part in sf_chunks:
                total += sf_loss(*part)
            for part in ad_chunks:
                total += ad_loss(*part)
        optimizer.apply_gradients([(tape.gradient(total, theta), theta)])
    return theta.numpy().astype(np.float64)


def _slices(n: int, size: int):
    return [slice(i, min(n, i + size)) for i in range(0, max(n, 1), size)]


def posterior_scores(world, theta, users, queries, keywords) -> np.ndarray:
    """SF click probability with ``θ_u`` replaced by an estimate (plug-in)."""
    cfg = world.config
    users, queries, keywords = (np.asarray(a, np.int64) for a in (users, queries, keywords))
    phi = np.asarray(world.keyword_embedding, np.float64)[keywords]
    logit = (cfg.sf_bias + world.keyword_popularity[keywords]
             + cfg.facet_boost * world._query_facet_mask[queries, world.keyword_facet[keywords]]  # noqa: SLF001
             + cfg.pref_scale * np.sum(theta[users] * phi, axis=1))
    return 1.0 / (1.0 + np.exp(-logit))
