"""Taobao-like behaviour sequences (pv/cart/fav/buy) with local context and periodic buying.

The generative story (000, 002, 003):

- a user's next item comes, with probability ``stay_in_context``, from the category of one of
  their last ``context_length`` actions (local context), otherwise from their long-term taste;
  within the category, items are viewed by popularity (Zipf with exponent
  ``behaviour_item_zipf`` over a random ranking: a few head items, a long tail);
- a view (``pv``) turns into a click-like action (``cart`` or ``fav``) with
  ``sigmoid(click_bias + affinity(u, item) + context_click_boost · Σ recent clicks in the same
  category · 0.5^(age / context_half_life_hours))`` — the *local* context (recent actions,
  same-category recency, the time gaps between them) moves the click rate, not only the user's
  average taste;
- a purchase (``buy``) happens only after a click-like action on the same item, with
  ``sigmoid(buy_bias + affinity + buy_period_boost · [periodic buying day])``: conversions are
  rarer and cluster on each user's periodic buying days;
- activity comes in sessions: short in-session gaps, and sessions arriving over the whole
  window at a per-user rate such that the expected number of steps in the window is log-normal
  with mean ``behaviour_events_mean``: events per user, not the window, set how much history
  each user has.

``affinity(u, item) = quality(item) + taste(u, item)`` with ``taste`` the query-free title appeal
of the search world (``World.title_appeal``), so the behaviour and search parts share one user.

Restricted ceilings (``BehaviourCeilings``, written beside the oracle): with
``taste = m_item + e`` (``m_item``, ``s_item`` = mean and standard deviation over users),

- ``item``: the true model knowing only the item — quality and its mean taste — with the user's
  own taste ``e ~ N(0, s_item²)``, the local context and the buying day integrated out over
  their distributions in the log (what a history-blind model could reach at best);
- ``context``: + the local context term and the buying day of the impression (all of it can be
  read from the history), the user's own taste still integrated out;
- the oracle: + the user's own taste.

Generation is vectorised over users, stepping through sequence positions (no per-event loop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abtest.world.world import PAD, World, sigmoid

BEHAVIOURS = ("pv", "cart", "fav", "buy")
# oracle/behaviour.csv: the true probabilities, then the restricted ceilings (BehaviourCeilings).
BEHAVIOUR_ORACLE_COLUMNS = ("user_id", "ts", "p_click", "p_conversion", "p_click_item",
                            "p_conversion_item", "p_click_context", "p_conversion_context")
IN_SESSION_GAP_SECONDS = 180.0
NEW_SESSION_PROB = 0.15
CEILING_USERS = 256             # users sampled for each item's taste mean and spread
CEILING_CONTEXT_POINTS = 16     # quantiles of the context term integrated over (item ceiling)
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(24)


@dataclass
class BehaviourLog:
    """Events sorted by (ts, user); oracle rows are one per ``pv`` event, same order."""

    user: np.ndarray        # (E,) int64
    item: np.ndarray        # (E,) int64 (ad ids)
    category: np.ndarray    # (E,) int64
    behavior: np.ndarray    # (E,) int8 index into BEHAVIOURS
    ts: np.ndarray          # (E,) int64 Unix seconds; strictly increasing per user
    oracle_user: np.ndarray
    oracle_ts: np.ndarray
    oracle_p_click: np.ndarray
    oracle_p_conversion: np.ndarray
    # Parts of the true logits per oracle row (restricted ceilings).
    oracle_item: np.ndarray | None = None
    oracle_quality: np.ndarray | None = None
    oracle_taste: np.ndarray | None = None
    oracle_context: np.ndarray | None = None     # context_click_boost · decayed recent clicks
    oracle_buying_day: np.ndarray | None = None


@dataclass
class BehaviourCeilings:
    """Restricted-oracle probabilities per oracle row (see the module docstring)."""

    p_click_item: np.ndarray
    p_conversion_item: np.ndarray
    p_click_context: np.ndarray
    p_conversion_context: np.ndarray


def item_affinity(world: World, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """How much a user likes an item outside search: quality + query-free title appeal."""
    no_query = np.full(users.shape, PAD)
    return world.ad_quality[items] + world.title_appeal(users, no_query, items)


def simulate_behaviour(world: World, rng: np.random.Generator, progress=None) -> BehaviourLog:
    cfg = world.config
    n = min(cfg.behaviour_users, world.n_users)
    users = np.sort(rng.choice(world.n_users, size=n, replace=False))
    window_start = cfg.window_start
    window = cfg.days * 86_400
    window_end = window_start + window

    # Sessions arrive as a Poisson process over the whole window (so every day and split sees
    # behaviour alike) at a per-user rate that makes the expected number of steps in the window
    # ``target`` (log-normal, mean behaviour_events_mean); steps per session are geometric
    # (mean 1 / NEW_SESSION_PROB). A user stops at the window end or at behaviour_events_max.
    sigma = 0.8
    target = np.clip(rng.lognormal(np.log(cfg.behaviour_events_mean) - sigma**2 / 2, sigma,
                                   size=n), 1.0, cfg.behaviour_events_max)
    max_steps = cfg.behaviour_events_max
    period = rng.integers(cfg.buy_period_days[0], cfg.buy_period_days[1] + 1, size=n)
    phase = rng.integers(0, period)
    session_gap = window / (NEW_SESSION_PROB * target)
    t = window_start + rng.exponential(session_gap).astype(np.int64)
    by_popularity, popularity_cdf = _popularity(world, rng)
    half_life = cfg.context_half_life_hours * 3_600.0
    context_category = np.full((n, cfg.context_length), PAD, dtype=np.int64)
    context_clicked = np.zeros((n, cfg.context_length), dtype=bool)
    context_ts = np.zeros((n, cfg.context_length), dtype=np.int64)
    alive = np.ones(n, dtype=bool)

    chunks: list[tuple[np.ndarray, ...]] = []
    oracle: list[tuple[np.ndarray, ...]] = []
    alive &= t < window_end
    for _ in range(max_steps):
        active = np.flatnonzero(alive)
        if active.size == 0:
            break
        u = users[active]
        # Next category: a recent one (local context) or the long-term taste.
        n_context = (context_category[active] != PAD).sum(axis=1)
        stay = (rng.random(active.size) < cfg.stay_in_context) & (n_context > 0)
        pick = (rng.random(active.size) * np.maximum(n_context, 1)).astype(np.int64)
        recent = context_category[active, pick]
        cdf = world.user_category_cdf[u]
        taste = np.minimum((cdf < rng.random(active.size, dtype=np.float32)[:, None]).sum(axis=1),
                           cfg.n_categories - 1)
        category = np.where(stay, recent, taste)
        # The item: by its popularity within the category (Zipf over a random ranking).
        slot = np.searchsorted(popularity_cdf, category + rng.random(active.size), side="right")
        item = by_popularity[np.minimum(slot, by_popularity.size - 1)]

        ts_pv = t[active]
        quality = world.ad_quality[item]
        affinity = item_affinity(world, u, item)
        # Recent click-like actions in the candidate's category, each halved per half-life of age.
        age = (ts_pv[:, None] - context_ts[active]).astype(np.float64)
        weight = np.where(context_clicked[active] & (context_category[active] == category[:, None]),
                          0.5 ** (age / half_life), 0.0)
        context = cfg.context_click_boost * weight.sum(axis=1)
        p_click = sigmoid(cfg.click_bias + affinity + context)
        day = (ts_pv - window_start) // 86_400
        buying_day = (day + phase[active]) % period[active] == 0
        p_buy = sigmoid(cfg.buy_bias + affinity + cfg.buy_period_boost * buying_day)
        clicked = rng.random(active.size) < p_click
        bought = clicked & (rng.random(active.size) < p_buy)
        click_kind = np.where(rng.random(active.size) < 0.5, 1, 2)  # cart or fav
        ts_click = ts_pv + rng.integers(5, 600, size=active.size)
        ts_buy = ts_click + rng.integers(30, 3_600, size=active.size)
        last = np.where(bought, ts_buy, np.where(clicked, ts_click, ts_pv))

        # Events past the window end the user's sequence (never emitted).
        inside = last < window_end
        alive[active[~inside]] = False
        keep = inside
        for mask, kind, ts in ((keep, np.zeros_like(click_kind), ts_pv),
                               (keep & clicked, click_kind, ts_click),
                               (keep & bought, np.full_like(click_kind, 3), ts_buy)):
            chunks.append((u[mask], item[mask], category[mask], kind[mask].astype(np.int8),
                           ts[mask]))
        oracle.append((u[keep], ts_pv[keep], p_click[keep], (p_click * p_buy)[keep], item[keep],
                       quality[keep], (affinity - quality)[keep], context[keep],
                       buying_day[keep]))

        # Slide the context window: most recent first.
        for array, value in ((context_category, category), (context_clicked, clicked),
                             (context_ts, ts_pv)):
            array[active] = np.roll(array[active], 1, axis=1)
            array[active, 0] = value
        new_session = rng.random(active.size) < NEW_SESSION_PROB
        gap = rng.exponential(np.where(new_session, session_gap[active], IN_SESSION_GAP_SECONDS))
        t[active] = last + 1 + gap.astype(np.int64)
        if progress is not None:
            progress(active.size)

    user, item, category, behavior, ts = (np.concatenate(cols) for cols in zip(*chunks))
    order = np.lexsort((user, ts))
    columns = [np.concatenate(cols) for cols in zip(*oracle)]
    o_order = np.lexsort((columns[0], columns[1]))
    (o_user, o_ts, o_click, o_conv, o_item, o_quality, o_taste, o_context,
     o_buying_day) = (c[o_order] for c in columns)
    return BehaviourLog(
        user=user[order], item=item[order], category=category[order], behavior=behavior[order],
        ts=ts[order], oracle_user=o_user, oracle_ts=o_ts, oracle_p_click=o_click,
        oracle_p_conversion=o_conv, oracle_item=o_item, oracle_quality=o_quality,
        oracle_taste=o_taste, oracle_context=o_context, oracle_buying_day=o_buying_day,
    )


def _popularity(world: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Items ordered by category, then by a random popularity rank within it, and the CDF of
    ``behaviour_item_zipf``-Zipf views over that order, offset by the category index (so one
    ``searchsorted(cdf, category + u)`` draws an item of the category)."""
    cfg = world.config
    by_popularity = np.concatenate([start + rng.permutation(count) for start, count
                                    in zip(world.category_ad_start, world.category_ad_count)])
    cdf = np.empty(by_popularity.size)
    for c, (start, count) in enumerate(zip(world.category_ad_start, world.category_ad_count)):
        weights = 1.0 / np.arange(1, count + 1) ** cfg.behaviour_item_zipf
        cdf[start:start + count] = c + np.cumsum(weights) / weights.sum()
        cdf[start + count - 1] = c + 1.0
    return by_popularity, cdf


def _item_taste_moments(world: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``CEILING_USERS`` sampled users of every item's taste."""
    users = rng.choice(world.n_users, size=min(CEILING_USERS, world.n_users), replace=False)
    mean = np.zeros(world.n_ads)
    std = np.zeros(world.n_ads)
    for start in range(0, world.n_ads, 256):
        items = np.arange(start, min(start + 256, world.n_ads))
        u = np.repeat(users, items.size)
        i = np.tile(items, users.size)
        taste = (item_affinity(world, u, i) - world.ad_quality[i]).reshape(users.size, items.size)
        mean[items], std[items] = taste.mean(axis=0), taste.std(axis=0)
    return mean, std


def _expect_over_taste(logit_click, logit_buy, std):
    """``E[σ(c + e), σ(c + e)·σ(b + e)]`` for ``e ~ N(0, std²)`` (24-point Gauss–Hermite)."""
    e = np.sqrt(2.0) * std[..., None] * _NODES
    w = _WEIGHTS / np.sqrt(np.pi)
    p_click = sigmoid(logit_click[..., None] + e)
    p_conversion = p_click * sigmoid(logit_buy[..., None] + e)
    return (p_click * w).sum(axis=-1), (p_conversion * w).sum(axis=-1)


def behaviour_ceilings(world: World, log: BehaviourLog, rng: np.random.Generator) -> BehaviourCeilings:
    """The ``item`` and ``context`` restricted oracles of every oracle row of ``log``."""
    cfg = world.config
    mean, std = _item_taste_moments(world, rng)
    item = log.oracle_item
    base = log.oracle_quality + mean[item]
    # context: the row's own context term and buying day are known.
    click_context, conversion_context = _expect_over_taste(
        cfg.click_bias + base + log.oracle_context,
        cfg.buy_bias + base + cfg.buy_period_boost * log.oracle_buying_day, std[item])
    # item: integrate the context term over its quantiles and the buying day over its rate.
    items, index = np.unique(item, return_inverse=True)
    item_base = world.ad_quality[items] + mean[items]
    levels = np.quantile(log.oracle_context, (np.arange(CEILING_CONTEXT_POINTS) + 0.5)
                         / CEILING_CONTEXT_POINTS)
    buying_rate = float(np.mean(log.oracle_buying_day))
    click_item = np.zeros(items.size)
    conversion_item = np.zeros(items.size)
    for level in levels:
        for boost, share in ((cfg.buy_period_boost, buying_rate), (0.0, 1.0 - buying_rate)):
            c, v = _expect_over_taste(cfg.click_bias + item_base + level,
                                      cfg.buy_bias + item_base + boost, std[items])
            click_item += share * c / levels.size
            conversion_item += share * v / levels.size
    return BehaviourCeilings(p_click_item=click_item[index], p_conversion_item=conversion_item[index],
                             p_click_context=click_context, p_conversion_context=conversion_context)
