"""Which selling points (SPs) a bucket adds to each displayed ad title, and whether highlighted.

A policy maps display contexts (user, query, ad) to a PAD-filled matrix of SP keyword ids
(N, k) — always true attributes of the ad — plus the highlight flag. Policies (001 Table 2):

- ``title_only``: nothing added (TSS);
- ``popular_sps(k)``: the ad's k attributes most clicked overall (NSPSS, not personalised);
- ``random_sps(k)``: k of the ad's attributes at random;
- ``personalised_sps(k)``: the ad's k attributes a scorer ranks highest for this user and query
  (PSPSS); the scorer is the served model (``serving.client``), a SavedModel in process, or the
  world's own appeal (the oracle ceiling).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from abtest.world.world import PAD, World


class Scorer(Protocol):
    """Scores candidate SP keywords for display contexts: (N, A) floats, NaN where PAD."""

    name: str

    def score(self, users: np.ndarray, queries: np.ndarray, ads: np.ndarray,
              candidates: np.ndarray) -> np.ndarray: ...


@dataclass
class OracleScorer:
    """The world's true appeal: the best any model could do (the ceiling)."""

    world: World
    name: str = "oracle"

    def score(self, users, queries, ads, candidates):
        return self.world.appeal(users[:, None], queries[:, None], candidates)


def top_k_by_score(candidates: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the highest scores per row (PAD candidates never chosen)."""
    scores = np.where(candidates == PAD, -np.inf, np.nan_to_num(scores, nan=-np.inf))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(candidates, order, axis=1)
    return np.where(np.take_along_axis(scores, order, axis=1) == -np.inf, PAD, chosen)


@dataclass
class Policy:
    """One bucket's treatment. ``kind`` is title_only | popular | random | personalised."""

    kind: str
    k: int = 0
    highlight: bool = False
    scorer: Scorer | None = None
    keyword_clicks: np.ndarray | None = None   # for ``popular``: clicks per keyword overall

    KINDS = ("title_only", "popular_sps", "random_sps", "personalised_sps")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown policy {self.kind!r}; choose from {', '.join(self.KINDS)}")
        if self.kind != "title_only" and not 1 <= self.k <= 5:
            raise ValueError(f"policy {self.kind} needs k in 1..5 SPs, got {self.k}")
        if self.kind == "personalised_sps" and self.scorer is None:
            raise ValueError("policy personalised_sps needs a scorer")
        if self.kind == "popular_sps" and self.keyword_clicks is None:
            raise ValueError("policy popular_sps needs keyword click counts")

    @property
    def label(self) -> str:
        if self.kind == "title_only":
            return "title only"
        text = f"{self.kind.replace('_sps', '')} {self.k} SP{'s' if self.k > 1 else ''}"
        if self.kind == "personalised_sps":
            text += f" ({self.scorer.name})"
        return text + (" + highlight" if self.highlight else "")

    def choose(self, world: World, users: np.ndarray, queries: np.ndarray, ads: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        candidates = world.ad_attributes[ads]
        if self.kind == "title_only":
            return np.full((users.size, 1), PAD)
        if self.kind == "popular_sps":
            scores = self.keyword_clicks[np.maximum(candidates, 0)].astype(np.float64)
        elif self.kind == "random_sps":
            scores = rng.random(candidates.shape)
        else:
            scores = self.scorer.score(users, queries, ads, candidates)
        return top_k_by_score(candidates, scores, self.k)


def keyword_click_counts(world: World, rng: np.random.Generator, days: int = 1) -> np.ndarray:
    """Clicks per SP keyword in the SF logs of ``days`` days of traffic ("most clicked overall")."""
    from abtest.world.logs import simulate_search_day

    counts = np.zeros(world.config.n_keywords)
    for day in range(days):
        sf = simulate_search_day(world, day, rng).sf
        counts += np.bincount(sf["sf_keyword"][sf["clicked"]], minlength=counts.size)
    return counts
