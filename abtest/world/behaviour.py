"""Taobao-like behaviour sequences (pv/cart/fav/buy) with local context and periodic buying.

The generative story (000, 002, 003):

- a user's next item comes, with probability ``stay_in_context``, from the category of one of
  their last ``context_length`` actions (local context), otherwise from their long-term taste;
- a view (``pv``) turns into a click-like action (``cart`` or ``fav``) with
  ``sigmoid(click_bias + affinity(u, item) + context_click_boost · #recent clicks in the same
  category)`` — so the *local* context moves the click rate, not only the user's average taste;
- a purchase (``buy``) happens only after a click-like action on the same item, with
  ``sigmoid(buy_bias + affinity + buy_period_boost · [periodic buying day])``: conversions are
  rarer and cluster on each user's periodic buying days;
- activity comes in sessions: short in-session gaps, long gaps between sessions.

Generation is vectorised over users, stepping through sequence positions (no per-event loop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abtest.world.world import PAD, World, sigmoid

BEHAVIOURS = ("pv", "cart", "fav", "buy")
IN_SESSION_GAP_SECONDS = 180.0
NEW_SESSION_PROB = 0.15
SESSION_GAP_SECONDS = 1.5 * 86_400


@dataclass
class BehaviourLog:
    """Events sorted by (ts, user); oracle rows are one per ``pv`` event."""

    user: np.ndarray        # (E,) int64
    item: np.ndarray        # (E,) int64 (ad ids)
    category: np.ndarray    # (E,) int64
    behavior: np.ndarray    # (E,) int8 index into BEHAVIOURS
    ts: np.ndarray          # (E,) int64 Unix seconds; strictly increasing per user
    oracle_user: np.ndarray
    oracle_ts: np.ndarray
    oracle_p_click: np.ndarray
    oracle_p_conversion: np.ndarray


def item_affinity(world: World, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """How much a user likes an item outside search: quality + query-free title appeal."""
    no_query = np.full(users.shape, PAD)
    return world.ad_quality[items] + world.title_appeal(users, no_query, items)


def simulate_behaviour(world: World, rng: np.random.Generator, progress=None) -> BehaviourLog:
    cfg = world.config
    n = min(cfg.behaviour_users, world.n_users)
    users = np.sort(rng.choice(world.n_users, size=n, replace=False))
    window_start = cfg.window_start
    window_end = window_start + cfg.days * 86_400

    sigma = 0.8
    steps = np.clip(np.round(rng.lognormal(np.log(cfg.behaviour_events_mean) - sigma**2 / 2,
                                           sigma, size=n)), 1, cfg.behaviour_events_max)
    steps = steps.astype(np.int64)
    period = rng.integers(cfg.buy_period_days[0], cfg.buy_period_days[1] + 1, size=n)
    phase = rng.integers(0, period)
    # Sequences start anywhere in the window, so every day (and split) sees behaviour.
    t = window_start + rng.integers(0, cfg.days * 86_400, size=n)
    context_category = np.full((n, cfg.context_length), PAD, dtype=np.int64)
    context_clicked = np.zeros((n, cfg.context_length), dtype=bool)
    alive = np.ones(n, dtype=bool)

    chunks: list[tuple[np.ndarray, ...]] = []
    oracle: list[tuple[np.ndarray, ...]] = []
    for step in range(int(steps.max())):
        active = np.flatnonzero(alive & (step < steps))
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
        item = (world.category_ad_start[category]
                + (rng.random(active.size) * world.category_ad_count[category]).astype(np.int64))

        affinity = item_affinity(world, u, item)
        recent_clicks = ((context_category[active] == category[:, None])
                         & context_clicked[active]).sum(axis=1)
        p_click = sigmoid(cfg.click_bias + affinity + cfg.context_click_boost * recent_clicks)
        ts_pv = t[active]
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
        oracle.append((u[keep], ts_pv[keep], p_click[keep], (p_click * p_buy)[keep]))

        # Slide the context window: most recent first.
        context_category[active] = np.roll(context_category[active], 1, axis=1)
        context_clicked[active] = np.roll(context_clicked[active], 1, axis=1)
        context_category[active, 0] = category
        context_clicked[active, 0] = clicked
        new_session = rng.random(active.size) < NEW_SESSION_PROB
        gap = rng.exponential(np.where(new_session, SESSION_GAP_SECONDS, IN_SESSION_GAP_SECONDS))
        t[active] = last + 1 + gap.astype(np.int64)
        if progress is not None:
            progress(step)

    user, item, category, behavior, ts = (np.concatenate(cols) for cols in zip(*chunks))
    order = np.lexsort((user, ts))
    o_user, o_ts, o_click, o_conv = (np.concatenate(cols) for cols in zip(*oracle))
    o_order = np.lexsort((o_user, o_ts))
    return BehaviourLog(
        user=user[order], item=item[order], category=category[order], behavior=behavior[order],
        ts=ts[order], oracle_user=o_user[o_order], oracle_ts=o_ts[o_order],
        oracle_p_click=o_click[o_order], oracle_p_conversion=o_conv[o_order],
    )
