"""The SF task's ceilings on logged impressions, and what the users' own train clicks reveal.

The restricted oracles themselves are the world's (``World.sf_ceilings``; simulate-logs writes
them into ``oracle/sf_impressions.csv``, which ``adpush evaluate`` reads). This module scores
impressions of a simulate-logs directory with them, and fits ``posterior_latent``: every user's
``θ_u`` given the profile prior and their logged clicks, with the world's true parameters — the
best any model could learn per user from the same rows. Only bench/ uses the posterior
(bench/sp_ceilings.py, bench/sp_ceilings_logs.py, bench/sp_ab_ceilings.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from abtest.world.logs import read_world
from abtest.world.world import sigmoid
from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow


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


def sf_ceiling_scores(world, users, queries, keywords) -> dict:
    """``{ceiling name: [N] probability}`` for SF impressions given as world ids, plus
    ``"oracle"`` (the true probability)."""
    return {**world.sf_ceilings(users, queries, keywords),
            "oracle": np.asarray(world.p_sf_click(users, queries, keywords), np.float64)}


def ceilings_for_impressions(logs_dir, impression_ids, world=None) -> dict:
    """``{name: [N] probability}`` of every ceiling (and ``oracle``) for SF impressions."""
    world = world if world is not None else read_world(logs_dir)
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
    fitted, resid_cov = world.profile_latent_fit
    precision = tf.constant(np.linalg.inv(resid_cov), tf.float32)
    prior_mean = tf.constant(fitted, tf.float32)
    phi = tf.constant(world.keyword_embedding, tf.float32)

    def sf_parts(rows):
        kw = rows["keywords"]
        const = world.sf_logit_without_user(rows["queries"], kw)
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
                    + cfg.facet_boost * world.facet_match(queries[:, None], safe))
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
    return sigmoid(world.sf_logit(users, queries, keywords, theta))
