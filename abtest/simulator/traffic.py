"""Simulated A/B experiments over the world's traffic.

Each user has a repertoire of ``slots`` display contexts (query, ad, position) drawn from their
category taste — the searches they keep making. Every day a user sees
``Poisson(activity_u · ads_per_session · scale / slots)`` displays in each slot, and each display
is clicked with the world's true probability p of the title actually shown (the bucket's policy
picks the added SPs and the highlight). By Poisson thinning, a cell's clicks are then
Poisson(λp) and its unclicked displays Poisson(λ(1−p)), independent; sums of independent
Poissons are Poisson, so a user's clicks and displays on a day are drawn exactly — the same joint
distribution as one Bernoulli per display — from two Poisson draws with the summed rates, at a
cost that does not grow with the number of displays. Policies and scorers run once per cell, so
a served model is called for users × slots rows, batched, and the title-only logit of every cell
is computed once per pool and shared by all policies.

The output per bucket is per-user sufficient statistics (n, Σc, Σm, Σc², Σm², Σcm) overall and
per day, which is all the statistics in ``abtest.stats`` need.

With ``pre_days > 0`` the same users also get a pre-period (the covariates of CUPED,
``abtest.stats.cuped``): the ``pre_days`` days before the experiment on the same world, the same
display contexts and the same daily traffic, with *every* user under the control policy (the
treatment does not exist yet). It is drawn from its own random stream, so adding a pre-period
changes no experiment-period draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from abtest.simulator.buckets import assign_buckets
from abtest.simulator.policies import Policy, top_k_by_score
from abtest.stats.sufficient import SufficientStats, stats_by_group
from abtest.world.world import World

CHUNK_ROWS = 262_144


@dataclass
class DisplayPool:
    """Every user's display contexts: (U, S) arrays of query, ad and position ids."""

    queries: np.ndarray
    ads: np.ndarray
    positions: np.ndarray
    _scores: dict = field(default_factory=dict, repr=False)

    @property
    def n_users(self) -> int:
        return self.queries.shape[0]

    @property
    def slots(self) -> int:
        return self.queries.shape[1]

    @classmethod
    def sample(cls, world: World, slots: int, rng: np.random.Generator) -> "DisplayPool":
        users = np.repeat(np.arange(world.n_users), slots)
        queries = world.sample_queries(users, rng)
        ads, _ = world.sample_ads(queries, 1, rng)
        positions = rng.integers(1, world.config.ads_per_session + 1, size=users.size)
        shape = (world.n_users, slots)
        return cls(queries.reshape(shape), ads.reshape(shape), positions.reshape(shape))

    def base_logit(self, world: World) -> np.ndarray:
        """The title-only click logit of every (user, slot), (U·S,): shared by all policies."""
        if "_base_logit" not in self._scores:
            users = np.repeat(np.arange(self.n_users), self.slots)
            flat = (self.queries.ravel(), self.ads.ravel(), self.positions.ravel())
            out = np.empty(users.size)
            for start in range(0, users.size, CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                out[rows] = world.ad_logit(users[rows], *(x[rows] for x in flat))
            self._scores["_base_logit"] = out
        return self._scores["_base_logit"]

    def scores(self, world: World, scorer, progress: Callable[[int, int], None] | None = None
               ) -> np.ndarray:
        """Scorer's scores for every (user, slot) × candidate attribute, computed once per scorer.

        Returns (U·S, A) aligned with ``world.ad_attributes[self.ads.ravel()]``.
        """
        if scorer.name not in self._scores:
            users = np.repeat(np.arange(self.n_users), self.slots)
            queries, ads = self.queries.ravel(), self.ads.ravel()
            candidates = world.ad_attributes[ads]
            out = np.empty(candidates.shape, dtype=np.float64)
            for start in range(0, users.size, CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                out[rows] = scorer.score(users[rows], queries[rows], ads[rows], candidates[rows])
                if progress:
                    progress(min(start + CHUNK_ROWS, users.size), users.size)
            self._scores[scorer.name] = out
        return self._scores[scorer.name]


@dataclass(frozen=True)
class Experiment:
    """One A/B experiment: two policies, a split, a traffic budget and its own salt."""

    name: str
    control: Policy
    treatment: Policy
    control_name: str = "control"
    treatment_name: str = "treatment"
    displays: int = 30_000_000
    days: int = 14
    split: tuple[float, float] = (0.5, 0.5)
    salt: str = ""

    def __post_init__(self):
        if self.displays <= 0 or self.days <= 0:
            raise ValueError(f"experiment {self.name}: displays and days must be positive")


@dataclass
class ExperimentResult:
    experiment: Experiment
    buckets: np.ndarray                 # (U,) bucket per user (0 control, 1 treatment)
    impressions: np.ndarray             # (days, U) displays per user per day
    clicks: np.ndarray                  # (days, U)
    pre_impressions: np.ndarray | None = None   # (U,) displays per user over the pre-period
    pre_clicks: np.ndarray | None = None        # (U,)
    pre_days: int = 0

    @property
    def names(self) -> tuple[str, str]:
        return self.experiment.control_name, self.experiment.treatment_name

    def _stats(self, m: np.ndarray, c: np.ndarray) -> dict[str, SufficientStats]:
        exposed = m > 0
        pre = {}
        if self.pre_impressions is not None:
            pre = {"pre_impressions": self.pre_impressions[exposed], "pre_clicks": self.pre_clicks[exposed]}
        per_bucket = stats_by_group(self.buckets[exposed], m[exposed], c[exposed], 2, **pre)
        return dict(zip(self.names, per_bucket))

    def stats(self, through_day: int | None = None) -> dict[str, SufficientStats]:
        """Per-bucket sufficient statistics over users exposed up to ``through_day`` (inclusive),
        with their pre-period sums when the experiment has a pre-period."""
        last = self.impressions.shape[0] if through_day is None else through_day + 1
        return self._stats(self.impressions[:last].sum(axis=0), self.clicks[:last].sum(axis=0))

    def daily_stats(self) -> list[dict[str, SufficientStats]]:
        """Per-bucket statistics of each day on its own (users exposed that day)."""
        return [self._stats(self.impressions[day], self.clicks[day])
                for day in range(self.impressions.shape[0])]

    @property
    def displays(self) -> int:
        return int(self.impressions.sum())


def simulate_experiment(world: World, pool: DisplayPool, experiment: Experiment,
                        rng: np.random.Generator, pre_days: int = 0,
                        pre_rng: np.random.Generator | None = None) -> ExperimentResult:
    """Run one experiment over every user of the world; see the module docstring.

    Args:
        pre_days: length of the pre-period (0: none).
        pre_rng: the pre-period's random stream (required with ``pre_days``; kept apart from
            ``rng`` so the experiment's own draws do not depend on the pre-period).
    """
    n_users, slots = pool.n_users, pool.slots
    buckets = assign_buckets(np.arange(n_users), experiment.salt or experiment.name,
                             experiment.split)
    p = np.empty((n_users, slots))
    for bucket, policy in enumerate((experiment.control, experiment.treatment)):
        rows = np.flatnonzero(buckets == bucket)
        p[rows] = click_probability(world, pool, policy, rows, rng).reshape(rows.size, slots)

    click_rate, no_click_rate = user_day_rates(world, p, experiment.displays, experiment.days)
    clicks = rng.poisson(np.broadcast_to(click_rate, (experiment.days, n_users)))
    impressions = clicks + rng.poisson(np.broadcast_to(no_click_rate,
                                                       (experiment.days, n_users)))
    result = ExperimentResult(experiment, buckets, impressions, clicks)
    if pre_days > 0:
        if pre_rng is None:
            raise ValueError("a pre-period needs its own random stream (pre_rng)")
        pre_p = p.copy()
        treated = np.flatnonzero(buckets == 1)
        pre_p[treated] = click_probability(world, pool, experiment.control, treated,
                                            pre_rng).reshape(treated.size, slots)
        pre_click_rate, pre_no_click_rate = user_day_rates(world, pre_p, experiment.displays,
                                                           experiment.days)
        result.pre_clicks = pre_rng.poisson(pre_days * pre_click_rate)
        result.pre_impressions = result.pre_clicks + pre_rng.poisson(pre_days * pre_no_click_rate)
        result.pre_days = int(pre_days)
    return result


def user_day_rates(world: World, p: np.ndarray, displays: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected clicked and unclicked displays per user-day, given each slot's click probability.

    A user's displays per slot per day are Poisson(λ_u) with λ_u ∝ activity, scaled so the whole
    world sees ``displays`` over ``days``; thinning by ``p`` (U, slots) splits them into clicks
    (Σ_s λ p) and non-clicks (Σ_s λ (1 − p)).
    """
    slots = p.shape[1]
    base_rate = world.user_activity * world.config.ads_per_session
    cell_rate = base_rate * (displays / (days * base_rate.sum())) / slots
    click_rate = cell_rate * p.sum(axis=1)
    return click_rate, cell_rate * slots - click_rate


def click_probability(world: World, pool: DisplayPool, policy: Policy, rows: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """True click probability of every (user in rows) × slot display under ``policy``."""
    slots = pool.slots
    users = np.repeat(rows, slots)
    queries = pool.queries[rows].ravel()
    ads = pool.ads[rows].ravel()
    positions = pool.positions[rows].ravel()
    flat = (rows[:, None] * slots + np.arange(slots)[None, :]).ravel()
    base_logit = pool.base_logit(world)[flat]
    if policy.kind == "personalised_sps":
        all_scores = pool.scores(world, policy.scorer)
    out = np.empty(users.size)
    for start in range(0, users.size, CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        if policy.kind == "personalised_sps":
            sps = top_k_by_score(world.ad_attributes[ads[part]], all_scores[flat[part]], policy.k)
        else:
            sps = policy.choose(world, users[part], queries[part], ads[part], rng)
        out[part] = world.p_ad_click_with_sps(users[part], queries[part], ads[part],
                                              positions[part], sps, policy.highlight,
                                              base_logit=base_logit[part])
    return out
