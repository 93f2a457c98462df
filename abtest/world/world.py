"""The marketplace: SP keywords, categories, queries, ads, users and the true click models.

Everything is a numpy array indexed by integer ids; every click model is an explicit function of
ids returning probabilities, vectorised over any number of rows. Three models (issue 2):

1. ``p_sf_click(u, q, v)``: a user clicks specific-feature keyword ``v`` shown for query ``q``
   (the main task of 001).
2. ``p_ad_click(u, q, a, pos)``: a user clicks ad ``a``; its title counts through an
   attention-like weighting of its tokens that depends on the user and the query (the auxiliary
   task of 001, so attention pooling has something real to find).
3. ``p_ad_click_with_sps(u, q, a, pos, S, highlight)``: the same ad with the SP keywords ``S``
   added to its title, optionally highlighted (what 001's Table 2 A/B buckets test).

All three share one quantity, the *appeal* of a keyword to a user under a query:
``appeal(u, q, v) = pref_scale · θ_u·φ_v + popularity_v + facet_boost · [facet(v) ∈ facets(q)]``,
with a low-rank user vector θ_u that the user's profile partly explains.

The world also scores SF impressions with *restricted oracles* (``sf_ceilings``): the
Bayes-optimal probability given only part of what it knows, the figures a model fed the same
part could reach at best (simulate-logs writes them beside the true probability).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from abtest.world.config import WorldConfig

AGE_PROBS = np.array([0.03, 0.12, 0.27, 0.25, 0.18, 0.10, 0.05])
GENDER_PROBS = np.array([0.47, 0.48, 0.05])
CITY_TIER_PROBS = np.array([0.20, 0.30, 0.30, 0.20])
PROFILE_FIELDS = ("age_bucket", "gender", "city_tier", "activity_level")
PROFILE_CARDINALITY = (7, 3, 4, 4)

PAD = -1
SF_CEILINGS = ("popularity", "query", "profile")
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(24)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def expected_sigmoid(mean, std) -> np.ndarray:
    """``E σ(mean + std·Z)``, ``Z ~ N(0, 1)``, elementwise (24-point Gauss–Hermite)."""
    mean = np.asarray(mean, np.float64)[..., None]
    std = np.asarray(std, np.float64)[..., None]
    x = mean + std * np.sqrt(2.0) * _NODES
    return (_WEIGHTS / np.sqrt(np.pi) * (1.0 / (1.0 + np.exp(-x)))).sum(axis=-1)


def _rng_streams(seed: int, names: tuple[str, ...]) -> dict[str, np.random.Generator]:
    """Independent generators per component, so changing one size does not reshuffle the rest."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def _random_subsets(rng: np.random.Generator, pool: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows of distinct draws from ``pool`` (rows, P) with per-row ``sizes``; PAD-filled (rows, max)."""
    keys = rng.random(pool.shape)
    order = np.argsort(keys, axis=1)
    width = int(sizes.max()) if sizes.size else 0
    picked = np.take_along_axis(pool, order[:, :width], axis=1)
    picked[np.arange(width)[None, :] >= sizes[:, None]] = PAD
    return picked


def _sizes(rng: np.random.Generator, n: int, bounds: tuple[int, int]) -> np.ndarray:
    return rng.integers(bounds[0], bounds[1] + 1, size=n)


@dataclass
class World:
    """A built world. Use :meth:`World.build`; all arrays are read-only after that."""

    config: WorldConfig
    seed: int
    # SP keywords (ids 0..K-1 are also the first K title-token ids)
    keyword_facet: np.ndarray          # (K,) facet index
    keyword_embedding: np.ndarray      # (K, r) φ_v
    keyword_popularity: np.ndarray     # (K,)
    # categories and queries
    category_sps: np.ndarray           # (C, A) SP keywords applicable to each category
    query_category: np.ndarray         # (Q,)
    query_modifiers: np.ndarray        # (Q, 2) modifier ids, PAD-filled
    modifier_facet: np.ndarray         # (M,)
    # ads
    ad_category: np.ndarray            # (N,) sorted ascending: ads of a category are contiguous
    ad_attributes: np.ndarray          # (N, maxA) SP keyword ids, PAD-filled
    ad_title: np.ndarray               # (N, L) title token ids, PAD-filled
    ad_quality: np.ndarray             # (N,)
    category_ad_start: np.ndarray      # (C,) first ad of each category
    category_ad_count: np.ndarray      # (C,)
    # users
    user_profile: np.ndarray           # (U, 4) age_bucket, gender, city_tier, activity_level
    user_latent: np.ndarray            # (U, r) θ_u
    user_activity: np.ndarray          # (U,) mean sessions per day
    user_category_cdf: np.ndarray      # (U, C) float32 cumulative category taste
    user_sf_exposure: np.ndarray       # (U,) e_u: expected SF bars per session / sf_exposure_scale

    # ------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: WorldConfig, seed: int) -> "World":
        cfg = config.validate()
        rng = _rng_streams(seed, ("keywords", "categories", "queries", "ads", "users"))
        n_kw, r = cfg.n_keywords, cfg.latent_dim

        # Keywords: facet blocks, embeddings with unit-variance dot products, popularity.
        keyword_facet = np.repeat(np.arange(len(cfg.facets)), cfg.keywords_per_facet)
        keyword_embedding = rng["keywords"].normal(0.0, 1.0 / np.sqrt(r), size=(n_kw, r))
        keyword_popularity = rng["keywords"].normal(0.0, cfg.popularity_scale, size=n_kw)

        # Categories: each has its own applicable SP keywords.
        cat_rng = rng["categories"]
        all_kw = np.broadcast_to(np.arange(n_kw), (cfg.n_categories, n_kw))
        category_sps = _random_subsets(
            cat_rng, all_kw, np.full(cfg.n_categories, cfg.applicable_sps_per_category))

        # Queries: category token + 0..2 facet modifiers (the first query of a category is bare).
        q_rng = rng["queries"]
        n_mod = len(cfg.facets) * cfg.modifiers_per_facet
        modifier_facet = np.repeat(np.arange(len(cfg.facets)), cfg.modifiers_per_facet)
        query_category = np.repeat(np.arange(cfg.n_categories), cfg.queries_per_category)
        n_q = query_category.size
        n_mods = q_rng.choice(3, size=n_q, p=[0.3, 0.5, 0.2])
        n_mods[:: cfg.queries_per_category] = 0
        query_modifiers = _random_subsets(
            q_rng, np.broadcast_to(np.arange(n_mod), (n_q, n_mod)), n_mods)
        if query_modifiers.shape[1] < 2:
            query_modifiers = np.pad(query_modifiers, ((0, 0), (0, 2 - query_modifiers.shape[1])),
                                     constant_values=PAD)

        # Ads: category (Zipf-ish sizes, at least one ad each), attributes, title, quality.
        a_rng = rng["ads"]
        cat_weights = 1.0 / np.arange(1, cfg.n_categories + 1) ** 0.6
        ad_category = np.sort(np.concatenate([
            np.arange(cfg.n_categories),
            a_rng.choice(cfg.n_categories, size=cfg.n_ads - cfg.n_categories,
                         p=cat_weights / cat_weights.sum()),
        ]))
        ad_attributes = _random_subsets(
            a_rng, category_sps[ad_category], _sizes(a_rng, cfg.n_ads, cfg.ad_attributes))
        ad_title = cls._make_titles(cfg, a_rng, ad_category, ad_attributes)
        ad_quality = a_rng.normal(0.0, cfg.ad_quality_scale, size=cfg.n_ads)
        category_ad_count = np.bincount(ad_category, minlength=cfg.n_categories)
        category_ad_start = np.concatenate([[0], np.cumsum(category_ad_count)[:-1]])

        # Users: profile, latent preference partly explained by it, heavy-tailed activity.
        u_rng = rng["users"]
        n_u = cfg.n_users
        activity = cfg.sessions_per_day * u_rng.lognormal(
            -0.5 * cfg.activity_sigma**2, cfg.activity_sigma, size=n_u)
        activity_level = np.searchsorted(np.quantile(activity, [0.25, 0.5, 0.75]), activity)
        profile = np.stack([
            u_rng.choice(7, size=n_u, p=AGE_PROBS),
            u_rng.choice(3, size=n_u, p=GENDER_PROBS),
            1 + u_rng.choice(4, size=n_u, p=CITY_TIER_PROBS),
            activity_level,
        ], axis=1)
        group_share = cfg.profile_share / len(PROFILE_FIELDS)
        latent = u_rng.normal(0.0, np.sqrt(1.0 - cfg.profile_share), size=(n_u, r))
        for column, cardinality in enumerate(PROFILE_CARDINALITY):
            table = u_rng.normal(0.0, np.sqrt(group_share), size=(cardinality + 1, r))
            latent += table[profile[:, column]]
        taste = u_rng.gamma(cfg.category_concentration, size=(n_u, cfg.n_categories)) + 1e-12
        taste_cdf = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1).astype(np.float32)
        taste_cdf[:, -1] = 1.0
        if cfg.sf_exposure_activity_corr == 0.0:
            sf_exposure = u_rng.beta(*cfg.sf_exposure_beta, size=n_u)
        else:  # Gaussian copula: Beta marginal, correlated with log activity
            from scipy.stats import beta as beta_dist, norm  # noqa: PLC0415

            z_activity = (np.log(activity) - np.log(activity).mean()) / max(
                np.log(activity).std(), 1e-12)
            rho = cfg.sf_exposure_activity_corr
            z = rho * z_activity + np.sqrt(1.0 - rho**2) * u_rng.standard_normal(n_u)
            sf_exposure = beta_dist.ppf(norm.cdf(z), *cfg.sf_exposure_beta)

        world = cls(
            config=cfg, seed=seed, keyword_facet=keyword_facet,
            keyword_embedding=keyword_embedding, keyword_popularity=keyword_popularity,
            category_sps=category_sps, query_category=query_category,
            query_modifiers=query_modifiers, modifier_facet=modifier_facet,
            ad_category=ad_category, ad_attributes=ad_attributes, ad_title=ad_title,
            ad_quality=ad_quality, category_ad_start=category_ad_start,
            category_ad_count=category_ad_count, user_profile=profile, user_latent=latent,
            user_activity=activity, user_category_cdf=taste_cdf, user_sf_exposure=sf_exposure,
        )
        for value in vars(world).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        return world

    @staticmethod
    def _make_titles(cfg: WorldConfig, rng: np.random.Generator, ad_category: np.ndarray,
                     ad_attributes: np.ndarray) -> np.ndarray:
        """Titles mix category words, some true attribute keywords and filler, shuffled."""
        n = ad_category.size
        n_cat = _sizes(rng, n, cfg.title_category_words)
        n_att = _sizes(rng, n, cfg.title_attribute_words)
        n_fill = _sizes(rng, n, cfg.title_filler_words)
        word_pool = (cfg.n_keywords + ad_category[:, None] * cfg.category_words
                     + np.arange(cfg.category_words)[None, :])
        cat_words = _random_subsets(rng, word_pool, n_cat)
        att_cols = np.arange(ad_attributes.shape[1])[None, :]
        n_attr_real = (ad_attributes != PAD).sum(axis=1)
        att_pool = np.where(att_cols < n_attr_real[:, None], ad_attributes, PAD)
        # Attributes are already a random order: take the first n_att of them.
        att_words = np.where(att_cols[:, : int(n_att.max())] < n_att[:, None],
                             att_pool[:, : int(n_att.max())], PAD)
        filler_base = cfg.n_keywords + cfg.n_categories * cfg.category_words
        fill_words = filler_base + rng.integers(0, cfg.n_filler_words,
                                                size=(n, int(n_fill.max())))
        fill_words[np.arange(fill_words.shape[1])[None, :] >= n_fill[:, None]] = PAD
        tokens = np.concatenate([cat_words, att_words, fill_words], axis=1)
        # Shuffle real tokens within each title, padding last.
        keys = np.where(tokens == PAD, 2.0, rng.random(tokens.shape))
        tokens = np.take_along_axis(tokens, np.argsort(keys, axis=1), axis=1)
        width = int((tokens != PAD).sum(axis=1).max())
        return tokens[:, :width]

    # --- names ----------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return self.user_profile.shape[0]

    @property
    def n_ads(self) -> int:
        return self.ad_category.size

    @property
    def n_queries(self) -> int:
        return self.query_category.size

    @cached_property
    def keyword_names(self) -> np.ndarray:
        k = self.config.keywords_per_facet
        return np.array([f"sp_{facet}_{i:02d}" for facet in self.config.facets for i in range(k)])

    @cached_property
    def token_names(self) -> np.ndarray:
        """Names of every title token id: SP keywords, then category words, then filler."""
        cfg = self.config
        category_words = [f"c{c:02d}_w{w:02d}" for c in range(cfg.n_categories)
                          for w in range(cfg.category_words)]
        filler = [f"f{i:03d}" for i in range(cfg.n_filler_words)]
        return np.concatenate([self.keyword_names, category_words, filler])

    @cached_property
    def modifier_names(self) -> np.ndarray:
        m = self.config.modifiers_per_facet
        return np.array([f"mod_{facet}_{i}" for facet in self.config.facets for i in range(m)])

    @cached_property
    def query_texts(self) -> np.ndarray:
        """Space-separated query tokens: the category token, then its modifiers."""
        texts = []
        for cat, mods in zip(self.query_category, self.query_modifiers):
            words = [f"cat_{cat:02d}"] + [self.modifier_names[m] for m in mods if m != PAD]
            texts.append(" ".join(words))
        return np.array(texts)

    @cached_property
    def ad_title_texts(self) -> np.ndarray:
        names = self.token_names
        return np.array([" ".join(names[row[row != PAD]]) for row in self.ad_title])

    @cached_property
    def ad_attribute_texts(self) -> np.ndarray:
        names = self.keyword_names
        return np.array([" ".join(names[row[row != PAD]]) for row in self.ad_attributes])

    # --- preference -----------------------------------------------------------------------
    @cached_property
    def preference(self) -> np.ndarray:
        """(U, K) float32: pref_scale · θ_u·φ_v + popularity_v (the query-free part of appeal)."""
        pref = self.config.pref_scale * (self.user_latent @ self.keyword_embedding.T)
        pref += self.keyword_popularity[None, :]
        return pref.astype(np.float32)

    @cached_property
    def _query_facet_mask(self) -> np.ndarray:
        """(Q + 1, F) bool: the facets a query's modifiers ask for; the last row is "no query"."""
        mask = np.zeros((self.n_queries + 1, len(self.config.facets)), dtype=bool)
        for column in range(self.query_modifiers.shape[1]):
            mods = self.query_modifiers[:, column]
            has = mods != PAD
            mask[np.flatnonzero(has), self.modifier_facet[mods[has]]] = True
        return mask

    def appeal(self, users: np.ndarray, queries: np.ndarray, keywords: np.ndarray) -> np.ndarray:
        """Appeal of SP keywords to users under queries; broadcasts; PAD keywords give NaN.

        ``queries`` may be PAD (no query, e.g. browsing), which drops the facet boost.
        """
        pad = keywords == PAD
        safe_kw = np.where(pad, 0, keywords)
        value = self.preference[users, safe_kw]
        value = value + np.float32(self.config.facet_boost) * self.facet_match(queries, safe_kw)
        return np.where(pad, np.float32(np.nan), value)

    def facet_match(self, queries, keywords) -> np.ndarray:
        """``[facet(v) ∈ facets(q)]``: the query's modifiers ask for the keyword's facet (bool;
        broadcasts; a PAD query asks for none)."""
        queries = np.asarray(queries)
        query_row = np.where(queries == PAD, self.n_queries, queries)
        return self._query_facet_mask[query_row, self.keyword_facet[keywords]]

    # --- click model 1: SF keywords -------------------------------------------------------
    def p_sf_click(self, users, queries, keywords) -> np.ndarray:
        """P(click SF keyword v | user, query): the main task of 001."""
        return sigmoid(self.config.sf_bias + self.appeal(users, queries, keywords))

    def sf_logit_without_user(self, queries, keywords) -> np.ndarray:
        """``sf_bias + popularity_v + facet_boost·[facet(v) ∈ facets(q)]`` (float64, broadcasts):
        the SF click logit without the user's ``pref_scale·θ_u·φ_v``."""
        cfg = self.config
        return (cfg.sf_bias + self.keyword_popularity[keywords]
                + cfg.facet_boost * self.facet_match(queries, keywords))

    def sf_logit(self, users, queries, keywords, latent: np.ndarray | None = None) -> np.ndarray:
        """The SF click logit (float64) with ``θ_u = latent[u]``: by default the world's own
        latent, else an estimate of it (U, r), e.g. ``profile_latent_fit[0]``."""
        users, keywords = np.asarray(users, np.int64), np.asarray(keywords, np.int64)
        latent = self.user_latent if latent is None else np.asarray(latent, np.float64)
        phi = np.asarray(self.keyword_embedding, np.float64)[keywords]
        return (self.sf_logit_without_user(queries, keywords)
                + self.config.pref_scale * np.sum(latent[users] * phi, axis=-1))

    # --- restricted oracles of click model 1 ----------------------------------------------
    @cached_property
    def profile_latent_fit(self) -> tuple[np.ndarray, np.ndarray]:
        """``(E[θ_u | profile] (U, r), residual covariance (r, r))``: least squares of the latent
        on one-hot profile fields over all users (the generating structure is additive, so this
        recovers it)."""
        profile = np.asarray(self.user_profile)
        columns = [np.ones((profile.shape[0], 1))]
        for j, card in enumerate(PROFILE_CARDINALITY):
            columns.append(np.eye(card + 1)[profile[:, j]])
        x = np.concatenate(columns, axis=1)
        latent = np.asarray(self.user_latent, np.float64)
        coef, *_ = np.linalg.lstsq(x, latent, rcond=None)
        fitted = x @ coef
        residual_cov = np.cov((latent - fitted).T)
        for value in (fitted, residual_cov):
            value.setflags(write=False)
        return fitted, residual_cov

    def sf_ceilings(self, users, queries, keywords) -> dict[str, np.ndarray]:
        """``{name: [N] probability}`` of the SF restricted oracles (``SF_CEILINGS``): the
        Bayes-optimal click probability given only

        - ``popularity``: the keyword — ``E_θ σ(sf_bias + popularity_v + pref·θ·φ_v)``;
        - ``query``: + the facet boost of the query's modifiers;
        - ``profile``: + ``E[θ_u | profile]`` (``profile_latent_fit``).

        The unknown part of ``θ_u`` is integrated out (Gauss–Hermite over
        ``N(0, pref²·φ_vᵀ Σ φ_v)``) rather than plugged in at its mean: the spread differs per
        keyword, and so does ``E σ``. The gap between ``profile`` and ``p_sf_click`` is the
        private latent, which only per-user data (SF or ad clicks) can reveal.
        """
        cfg = self.config
        users, queries, keywords = (np.asarray(a, np.int64) for a in (users, queries, keywords))
        phi = np.asarray(self.keyword_embedding, np.float64)[keywords]             # (N, r)
        pop = np.asarray(self.keyword_popularity, np.float64)[keywords]
        boost = cfg.facet_boost * self.facet_match(queries, keywords)
        latent = np.asarray(self.user_latent, np.float64)
        theta_mean, theta_cov = latent.mean(axis=0), np.cov(latent.T)
        fitted, residual_cov = self.profile_latent_fit

        def spread(cov):
            return cfg.pref_scale * np.sqrt(np.einsum("ni,ij,nj->n", phi, cov, phi))

        # Row by row (einsum, not a BLAS product, whose last bit depends on a row's place in
        # the batch): an impression's ceilings do not depend on which rows are scored with it.
        prior = cfg.sf_bias + pop + cfg.pref_scale * np.einsum("nr,r->n", phi, theta_mean)
        return {
            "popularity": expected_sigmoid(prior, spread(theta_cov)),
            "query": expected_sigmoid(prior + boost, spread(theta_cov)),
            "profile": expected_sigmoid(self.sf_logit(users, queries, keywords, fitted),
                                        spread(residual_cov)),
        }

    # --- click model 2: ads ---------------------------------------------------------------
    def title_appeal(self, users: np.ndarray, queries: np.ndarray, ads: np.ndarray) -> np.ndarray:
        """Σ_j w_j r_j over real title tokens, w = softmax(τ·r) — user- and query-dependent."""
        cfg = self.config
        tokens = self.ad_title[ads]                                       # (N, L)
        is_sp = (tokens != PAD) & (tokens < cfg.n_keywords)
        is_category_word = (tokens >= cfg.n_keywords) & (
            tokens < cfg.n_keywords + cfg.n_categories * cfg.category_words)
        r = np.where(is_category_word, np.float32(cfg.category_word_appeal),
                     np.float32(cfg.filler_appeal))
        if cfg.ad_clicks_use_sp_appeal:
            sp_appeal = self.appeal(users[:, None], queries[:, None], np.where(is_sp, tokens, PAD))
        else:  # the ablation: SP tokens count alike for everyone, whatever the user's taste
            sp_appeal = np.float32(self.keyword_popularity.mean())
        r = np.where(is_sp, sp_appeal, r)
        logits = np.where(tokens == PAD, -np.inf, np.float32(cfg.title_temperature) * r)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.sum(np.where(tokens == PAD, 0.0, weights * r), axis=1, dtype=np.float64)

    def ad_logit(self, users, queries, ads, positions) -> np.ndarray:
        users, queries, ads, positions = (np.asarray(x) for x in (users, queries, ads, positions))
        cfg = self.config
        relevant = self.ad_category[ads] == np.where(queries == PAD, -1,
                                                     self.query_category[np.maximum(queries, 0)])
        return (cfg.ad_bias + self.ad_quality[ads] - cfg.position_decay * (positions - 1)
                - cfg.off_category_penalty * (~relevant & (queries != PAD))
                + cfg.title_weight * self.title_appeal(users, queries, ads))

    def p_ad_click(self, users, queries, ads, positions) -> np.ndarray:
        """P(click ad | user, query, title, position): the auxiliary task of 001."""
        return sigmoid(self.ad_logit(users, queries, ads, positions))

    # --- click model 3: ads with added SPs ------------------------------------------------
    def sp_gain(self, users: np.ndarray, queries: np.ndarray, sps: np.ndarray) -> np.ndarray:
        """Logit gain of adding SP keywords ``sps`` (N, k; PAD-filled) to the titles.

        The user notices the added SPs best-first with geometric attention decay, and every SP
        beyond the first costs clutter quadratically: gain rises then falls in |S| (with the
        defaults, 2 SPs beat 3, which beat 1, when the SPs appeal to the user).
        """
        cfg = self.config
        sps = np.atleast_2d(sps)
        appeal = self.appeal(users[:, None], queries[:, None], sps).astype(np.float64)
        ordered = -np.sort(-np.where(np.isnan(appeal), -np.inf, appeal), axis=1)
        n = (sps != PAD).sum(axis=1)
        decay = cfg.sp_attention_decay ** np.arange(sps.shape[1])[None, :]
        noticed = np.where(np.isfinite(ordered), ordered * decay, 0.0).sum(axis=1)
        clutter = cfg.sp_clutter * np.maximum(n - 1, 0) ** 2
        return np.where(n > 0, cfg.sp_gain * (noticed - clutter), 0.0)

    def p_ad_click_with_sps(self, users, queries, ads, positions, sps, highlight,
                            base_logit: np.ndarray | None = None) -> np.ndarray:
        """P(click | title + added SPs S, highlight): the A/B environment of 001 Table 2.

        ``base_logit`` may pass ``ad_logit(users, queries, ads, positions)`` computed earlier
        (it does not depend on S or the highlight), so many policies can share it.
        """
        users, queries, ads = (np.asarray(x) for x in (users, queries, ads))
        sps = np.atleast_2d(np.asarray(sps))
        shown = (sps != PAD).any(axis=1)
        lift = self.config.highlight_lift * (np.asarray(highlight, dtype=bool) & shown)
        if base_logit is None:
            base_logit = self.ad_logit(users, queries, ads, positions)
        return sigmoid(base_logit + self.sp_gain(users, queries, sps) + lift)

    def oracle_sps(self, users: np.ndarray, queries: np.ndarray, ads: np.ndarray,
                   k: int) -> np.ndarray:
        """The k true attributes of each ad with the highest appeal to the user (the ceiling)."""
        attrs = self.ad_attributes[ads]
        appeal = self.appeal(users[:, None], queries[:, None], attrs)
        order = np.argsort(np.where(np.isnan(appeal), np.inf, -appeal), axis=1)[:, :k]
        return np.take_along_axis(attrs, order, axis=1)

    # --- traffic --------------------------------------------------------------------------
    def sample_queries(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One query per row: category from the user's taste, query uniform within it."""
        cdf = self.user_category_cdf[users]
        u = rng.random(users.size, dtype=np.float32)[:, None]
        category = np.minimum((cdf < u).sum(axis=1), self.config.n_categories - 1)
        within = rng.integers(0, self.config.queries_per_category, size=users.size)
        return category * self.config.queries_per_category + within

    def sample_ads(self, queries: np.ndarray, n_slots: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Ads for ``n_slots`` positions per query: (ads (N, n_slots), positions (N, n_slots)).

        Most slots come from the query's category; ``off_category_rate`` from a random one.
        """
        n = queries.size
        category = np.repeat(self.query_category[queries][:, None], n_slots, axis=1)
        off = rng.random((n, n_slots)) < self.config.off_category_rate
        category = np.where(off, rng.integers(0, self.config.n_categories, size=(n, n_slots)),
                            category)
        ads = (self.category_ad_start[category]
               + (rng.random((n, n_slots)) * self.category_ad_count[category]).astype(np.int64))
        positions = np.broadcast_to(np.arange(1, n_slots + 1), (n, n_slots))
        return ads, positions.copy()

    def sample_sf_bar(self, queries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SF keywords shown for each query: distinct, uniform among the category's SPs."""
        pool = self.category_sps[self.query_category[queries]]
        size = np.full(queries.size, self.config.sf_keywords_per_bar)
        return _random_subsets(rng, pool, size)
