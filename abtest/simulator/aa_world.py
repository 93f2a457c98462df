"""A/A calibration on the world's own traffic (issue 7).

The population, its display contexts and every display's true click probability are fixed once:
a ``DisplayPool`` is sampled, and the click probability of each (user, slot) under one policy
(title only by default) comes from the simulator's own ``click_probability`` (so the shared
title-only logit ``pool.base_logit(world)`` is reused). The per-user daily click and no-click
rates follow ``simulate_experiment``: user u sees Poisson(λ_u) displays per slot per day with
λ_u ∝ activity_u, scaled so the experiment totals ``displays`` in expectation.

Each A/A run then does what a real A/A test on this traffic does: users are re-split into two
buckets by a fresh salt (``assign_buckets(user_ids, "aa-<seed>-<run>")``, the production hash),
both buckets get the *same* policy, and each user's clicks and unclicked displays are drawn as
independent Poissons (Poisson thinning, as in ``traffic.py``). The sum of per-user-day Poissons
over the days of a look is Poisson with the summed rate, so each look's increment is drawn with
one call per user — the same joint distribution as drawing every day, ``looks`` times the cost
instead of ``days`` times. Users with no display by a look are not in the experiment yet (as in
``ExperimentResult.stats``). Per-bucket sufficient statistics are reduced with one matrix–vector
product per run, and the tests are those of ``abtest.aa.evaluate_runs``.

Every run has its own random stream (``SeedSequence([seed, 0xAA, run])``) and salt, so results
do not depend on the number of worker threads (numpy releases the GIL while drawing).

With ``pre_days > 0`` each run also draws a pre-period for every user — ``pre_days`` days of the
same rates, after the experiment's own draws so those stay unchanged — and the CUPED test
(``abtest.stats.cuped``) is calibrated beside the others on the exposed users.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from abtest import aa
from abtest.simulator.buckets import assign_buckets
from abtest.simulator.policies import OracleScorer, Policy, keyword_click_counts
from abtest.simulator.traffic import DisplayPool, click_probability, user_day_rates
from abtest.stats.sufficient import SufficientStats

DEFAULT_DISPLAYS = 2_000_000
DEFAULT_DAYS = 14
DEFAULT_SLOTS = 32          # as the scenarios' default
RUNS_PER_TASK = 25          # runs handed to a worker thread at a time


def make_policy(world, kind: str = "title_only", k: int = 3, highlight: bool = False,
                rng: np.random.Generator | None = None) -> Policy:
    """The policy both A/A buckets get; ``personalised_sps`` is scored by the world's oracle."""
    if kind == "title_only":
        return Policy("title_only", highlight=highlight)
    extra = {}
    if kind == "personalised_sps":
        extra["scorer"] = OracleScorer(world)
    elif kind == "popular_sps":
        extra["keyword_clicks"] = keyword_click_counts(world, rng or np.random.default_rng(0))
    return Policy(kind, k=k, highlight=highlight, **extra)


@dataclass
class WorldAATraffic:
    """Per-user daily click / no-click Poisson rates of the world under one policy."""

    click_rate: np.ndarray          # (U,) expected clicks per user-day
    no_click_rate: np.ndarray       # (U,) expected unclicked displays per user-day
    days: int
    split: tuple[float, float] = (0.5, 0.5)
    description: dict = field(default_factory=dict)

    @classmethod
    def from_world(cls, world, policy: Policy | None = None, displays: int = DEFAULT_DISPLAYS,
                   days: int = DEFAULT_DAYS, slots: int = DEFAULT_SLOTS, seed: int = 0,
                   split: tuple[float, float] = (0.5, 0.5)) -> "WorldAATraffic":
        if displays <= 0 or days <= 0 or slots <= 0:
            raise ValueError("displays, days and slots must be positive")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        policy = policy or Policy("title_only")
        pool = DisplayPool.sample(world, slots, rng)
        n_users = pool.n_users
        p = click_probability(world, pool, policy, np.arange(n_users), rng).reshape(n_users, slots)
        click_rate, no_click_rate = user_day_rates(world, p, displays, days)  # as simulate_experiment
        expected_m = days * (click_rate + no_click_rate)
        description = {
            "source": "world", "n_users": int(n_users), "policy": policy.label,
            "displays_per_run": int(displays), "days": int(days), "slots": int(slots),
            "split": list(split), "pool_seed": int(seed),
            "expected_ctr": float(click_rate.sum() / (click_rate + no_click_rate).sum()),
            "expected_exposed_users": float(np.sum(-np.expm1(-expected_m))),
            "user_displays_p50_p90_p99_max": [float(x) for x in
                                              np.percentile(expected_m, [50, 90, 99, 100])],
        }
        return cls(click_rate, no_click_rate, int(days), tuple(split), description)

    @property
    def n_users(self) -> int:
        return self.click_rate.size

    def look_days(self, looks: int) -> np.ndarray:
        """Last day (exclusive) of each of ``looks`` evenly spaced looks; the last is ``days``."""
        if not 1 <= looks <= self.days:
            raise ValueError(f"looks must be in 1..days={self.days}, got {looks}")
        return np.array([self.days * j // looks for j in range(1, looks + 1)])

    def run_stats(self, run: int, seed: int, looks: int = 1, pre_days: int = 0) -> np.ndarray:
        """One A/A run: (2 buckets, 6 sufficient statistics — 15 with a pre-period, in
        ``ALL_FIELD_NAMES`` order — , looks) cumulative at each look."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xAA, run]))
        treated = (assign_buckets(np.arange(self.n_users), f"aa-{seed}-{run}", self.split) == 1
                   ).astype(np.float64)
        c = np.zeros(self.n_users)
        m = np.zeros(self.n_users)
        increments = []
        previous = 0
        for end in self.look_days(looks):
            length = end - previous
            previous = end
            clicks = rng.poisson(length * self.click_rate)
            increments.append((clicks, clicks + rng.poisson(length * self.no_click_rate)))
        if pre_days > 0:  # drawn after the experiment, which then does not depend on it
            c_pre = rng.poisson(pre_days * self.click_rate).astype(np.float64)
            m_pre = c_pre + rng.poisson(pre_days * self.no_click_rate)
        out = np.empty((2, 15 if pre_days > 0 else 6, looks))
        for j, (clicks, displays) in enumerate(increments):
            c += clicks
            m += displays
            exposed = (m > 0).astype(np.float64)
            rows = [exposed, c, m, c * c, m * m, c * m]
            if pre_days > 0:
                cp, mp = c_pre * exposed, m_pre * exposed  # only users in the experiment by now
                rows += [cp, mp, cp * cp, mp * mp, cp * mp, c * cp, m * mp, c * mp, m * cp]
            rows = np.stack(rows)
            out[1, :, j] = rows @ treated
            out[0, :, j] = rows.sum(axis=1) - out[1, :, j]
        return out


def _stats(fields: np.ndarray) -> SufficientStats:
    """Fields along axis 1 of ``fields`` [runs, 6 or 15, ...] -> SufficientStats of arrays [runs, ...]."""
    return SufficientStats(*(fields[:, i] for i in range(fields.shape[1])))


def run_aa_world(traffic: WorldAATraffic, runs: int = 1000, seed: int = 0, alpha: float = 0.05,
                 peeks: int = 0, workers: int | None = None, pre_days: int = 0) -> aa.AAResult:
    """``runs`` A/A experiments on the world's traffic, tested as ``abtest.aa.run_aa`` does.

    Args:
        peeks: when > 1, also read every run at ``peeks`` evenly spaced day boundaries
            (``--peeks DAYS`` = daily looks): ``delta_peeking`` vs ``sequential_peeking``.
        workers: threads drawing runs (default: up to 2); results do not depend on it.
        pre_days: also draw this many pre-period days per run and calibrate CUPED.
    """
    if pre_days < 0:
        raise ValueError("pre_days must be >= 0")
    if runs < 1:
        raise ValueError("need runs >= 1")
    looks = peeks if peeks > 1 else 1
    traffic.look_days(looks)  # validates
    workers = workers or min(2, os.cpu_count() or 1)

    def task(start: int) -> np.ndarray:
        stop = min(start + RUNS_PER_TASK, runs)
        return np.stack([traffic.run_stats(run, seed, looks, pre_days) for run in range(start, stop)])

    starts = range(0, runs, RUNS_PER_TASK)
    if workers > 1:
        with ThreadPoolExecutor(workers) as executor:
            fields = np.concatenate(list(executor.map(task, starts)))
    else:
        fields = np.concatenate([task(s) for s in starts])
    # fields: [runs, bucket, 6, looks]; the final look is the whole experiment.
    a, b = _stats(fields[:, 0, :, -1]), _stats(fields[:, 1, :, -1])
    peek_a = peek_b = None
    if looks > 1:  # peeking is about the fixed-horizon test: no pre-period needed there
        peek_a, peek_b = _stats(fields[:, 0, :6]), _stats(fields[:, 1, :6])
    tests = aa.evaluate_runs(a, b, alpha, peek_a, peek_b)
    description = dict(traffic.description)
    description["mean_displays_per_run"] = float(np.mean(a.sum_m + b.sum_m))
    description["mean_exposed_users_per_bucket"] = [float(np.mean(a.n)), float(np.mean(b.n))]
    if pre_days > 0:
        description["pre_days"] = int(pre_days)
    if looks > 1:
        description["peeks"] = int(looks)
        description["look_days"] = [int(d) for d in traffic.look_days(looks)]
    users_per_bucket = int(round(float(np.mean(a.n + b.n)) / 2))
    return aa.result_from_tests([tests], users_per_bucket=users_per_bucket, alpha=alpha,
                                seed=seed, traffic=description)
