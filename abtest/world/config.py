"""Typed world parameters with documented defaults, loadable from TOML.

Defaults follow issue 2 / 001: ~300 SP keywords in facets, ~40 categories, ~20k ads, SF
(main-task) data far sparser per user than ad-click (auxiliary) data, and an added-SP click model
in which 2 SPs are best, 3 slightly below, personalised > popular > none. Since issue 13 the
default world has 12k users who are more active (about as many rows as v1's 50k), so that every
cell of 001's Table 3 (train SF clicks <=6/>6 x ad clicks <=21/>21) holds >= 10% of the test SF
rows, and ad clicks reveal the SP preferences through the title (``title_weight``). The world
before issue 13 is ``configs/v1.toml`` (``WorldConfig.named("v1")``); ``configs/README.md``
says what changed and why.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adpush_core.errors import UserError

# Keys added after the v1 world (issue 13), with the values that reproduce v1.
ADDED_SINCE_V1 = {"sf_exposure_scale": 1.0, "sf_exposure_activity_corr": 0.0,
                  "ad_clicks_use_sp_appeal": True}
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"

DEFAULT_FACETS = (
    "price", "quality", "delivery", "brand", "material", "style",
    "service", "promotion", "size", "eco", "tech", "origin",
)


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world. Sizes must be positive; probabilities in [0, 1]."""

    # --- catalogue -------------------------------------------------------------------------
    facets: tuple[str, ...] = DEFAULT_FACETS
    keywords_per_facet: int = 25            # 12 x 25 = 300 SP keywords
    n_categories: int = 40
    category_words: int = 30                # title words private to each category
    applicable_sps_per_category: int = 40   # SP keywords that can describe a category's products
    n_filler_words: int = 500
    n_ads: int = 20_000
    ad_attributes: tuple[int, int] = (6, 14)        # true attributes per ad (min, max)
    title_category_words: tuple[int, int] = (2, 4)
    title_attribute_words: tuple[int, int] = (2, 4)
    title_filler_words: tuple[int, int] = (1, 3)
    queries_per_category: int = 20
    modifiers_per_facet: int = 5
    # --- users -----------------------------------------------------------------------------
    n_users: int = 12_000
    latent_dim: int = 8
    profile_share: float = 0.5              # share of latent variance explained by the profile
    activity_sigma: float = 0.7             # log-normal sigma of sessions per day (heavy tail)
    sessions_per_day: float = 4.2           # mean sessions per user per day
    category_concentration: float = 0.3     # Dirichlet concentration of a user's category taste
    # --- logs ------------------------------------------------------------------------------
    days: int = 14
    window_start: int = 1_511_539_200       # 2017-11-25 00:00 UTC, as the Taobao window
    ads_per_session: int = 10
    sf_keywords_per_bar: int = 5
    sf_exposure_beta: tuple[float, float] = (0.4, 2.0)  # per-user SF-bar use, Beta(a, b) draw e_u
    # Expected SF bars per session = sf_exposure_scale · e_u: floor(x) bars, plus one more with
    # probability frac(x). 1.0 = at most one bar, shown with probability e_u (the v1 world).
    sf_exposure_scale: float = 2.0
    # Correlation (Gaussian copula) of e_u with log activity; < 0: heavy searchers use the SF
    # bar less, so rich ad clicks and sparse SF clicks go together, as in 001's data.
    sf_exposure_activity_corr: float = 0.0
    # --- click model: preference ----------------------------------------------------------
    pref_scale: float = 1.0                 # std of the user x keyword preference
    popularity_scale: float = 0.5           # std of the global keyword popularity
    facet_boost: float = 0.8                # query modifier -> keywords of its facet
    # --- click model 1: SF keywords (main task) ---------------------------------------------
    sf_bias: float = -3.9
    # --- click model 2: ads (auxiliary task) ------------------------------------------------
    ad_bias: float = -3.7
    ad_quality_scale: float = 0.3
    position_decay: float = 0.12            # logit penalty per position below the first
    off_category_rate: float = 0.1          # share of ad slots filled from another category
    off_category_penalty: float = 1.5
    title_weight: float = 1.5               # weight of the attention-pooled title appeal
    # Ablation: False gives every SP token of a title the same fixed appeal (the mean keyword
    # popularity) for every user and query, so ad clicks carry nothing about SP preferences.
    ad_clicks_use_sp_appeal: bool = True
    title_temperature: float = 1.0          # sharpness of the user/query-dependent token weights
    category_word_appeal: float = 0.3
    filler_appeal: float = -1.0
    # --- click model 3: ads with added SPs and highlight ------------------------------------
    sp_gain: float = 0.045                  # logit per unit of noticed SP appeal
    sp_attention_decay: float = 0.6         # the i-th SP (best first) is noticed with decay^(i-1)
    sp_clutter: float = 0.12                # appeal units lost per extra SP, quadratic in |S|-1
    highlight_lift: float = 0.055           # logit lift when SPs are shown highlighted
    # --- behaviour sequences (Taobao-like, 000/002/003) -------------------------------------
    behaviour_users: int = 10_000            # users with behaviour sequences (capped at n_users)
    behaviour_events_mean: float = 100.0    # expected steps per user in the window (log-normal)
    behaviour_events_max: int = 1_000
    behaviour_item_zipf: float = 1.0        # item popularity within a category ~ 1 / rank^s
    context_length: int = 5                 # the "last few actions" that drive the next one
    stay_in_context: float = 0.6            # next item from a recent category vs long-term taste
    click_bias: float = -3.0
    context_click_boost: float = 0.8        # per recent click-like action in the same category
    context_half_life_hours: float = 12.0   # a recent action's boost halves with each half-life
    buy_bias: float = -3.2
    buy_period_days: tuple[int, int] = (3, 7)
    buy_period_boost: float = 2.0           # purchases cluster on a user's periodic buying days

    # ---------------------------------------------------------------------------------------
    @property
    def n_keywords(self) -> int:
        return len(self.facets) * self.keywords_per_facet

    def validate(self) -> "WorldConfig":
        """Raise UserError naming the first bad parameter."""
        positive = (
            "keywords_per_facet", "n_categories", "category_words", "applicable_sps_per_category",
            "n_filler_words", "n_ads", "queries_per_category", "modifiers_per_facet", "n_users",
            "latent_dim", "days", "ads_per_session", "sf_keywords_per_bar", "behaviour_users",
            "behaviour_events_max", "context_length",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"world parameter {name} must be a positive integer, got {value!r}")
        non_negative = ("sessions_per_day", "activity_sigma", "pref_scale", "popularity_scale",
                        "behaviour_events_mean", "category_concentration", "behaviour_item_zipf",
                        "sf_exposure_scale")
        if not self.context_half_life_hours > 0:
            raise UserError("world parameter context_half_life_hours must be > 0, "
                            f"got {self.context_half_life_hours!r}")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise UserError(f"world parameter {name} must be >= 0, got {getattr(self, name)!r}")
        if not -1.0 < self.sf_exposure_activity_corr < 1.0:
            raise UserError("world parameter sf_exposure_activity_corr must be in (-1, 1), "
                            f"got {self.sf_exposure_activity_corr!r}")
        for name in ("profile_share", "off_category_rate", "stay_in_context", "sp_attention_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"world parameter {name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("ad_attributes", "title_category_words", "title_attribute_words",
                     "title_filler_words", "buy_period_days"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise UserError(f"world parameter {name} must be (min, max) with 0 <= min <= max, "
                                f"got {(lo, hi)!r}")
        if len(set(self.facets)) != len(self.facets) or not self.facets:
            raise UserError("world parameter facets must be a non-empty list of distinct names")
        if self.applicable_sps_per_category > self.n_keywords:
            raise UserError(f"applicable_sps_per_category ({self.applicable_sps_per_category}) "
                            f"exceeds the number of SP keywords ({self.n_keywords})")
        if self.ad_attributes[1] > self.applicable_sps_per_category:
            raise UserError("ad_attributes max exceeds applicable_sps_per_category")
        if self.sf_keywords_per_bar > self.applicable_sps_per_category:
            raise UserError("sf_keywords_per_bar exceeds applicable_sps_per_category")
        if self.title_attribute_words[1] > self.ad_attributes[0]:
            raise UserError("title_attribute_words max exceeds ad_attributes min")
        if self.n_ads < self.n_categories:
            raise UserError(f"n_ads ({self.n_ads}) must be at least n_categories ({self.n_categories})")
        return self

    # ---------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "WorldConfig":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> "WorldConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown world parameter(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        converted = {}
        for name, value in values.items():
            default = getattr(cls(), name)
            if isinstance(default, tuple):
                if not isinstance(value, (list, tuple)) or len(value) != len(default) and name != "facets":
                    raise UserError(f"{where}: world parameter {name} must be a list like "
                                    f"{list(default)}, got {value!r}")
                value = tuple(value)
            elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            elif type(default) is not type(value):
                raise UserError(f"{where}: world parameter {name} must be "
                                f"{type(default).__name__}, got {value!r}")
            converted[name] = value
        return cls(**converted).validate()

    @classmethod
    def from_manifest(cls, values: dict[str, Any], where: str = "manifest") -> "WorldConfig":
        """The world of a simulate-logs ``manifest.json`` (``parameters.world``): every key is
        written there, except the ones added since, which take the value that reproduces the
        world that wrote it."""
        return cls.from_dict({**ADDED_SINCE_V1, **values}, where=where)

    @classmethod
    def from_toml(cls, path: str | Path) -> "WorldConfig":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"world config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML: {err}") from err
        data = data.get("world", data)  # accept a whole adpush config or a bare [world] table
        return cls.from_dict(data, where=str(path))

    @classmethod
    def named(cls, name: str) -> "WorldConfig":
        """A packaged world config, ``abtest/world/configs/<name>.toml`` (e.g. ``v1``)."""
        path = CONFIGS_DIR / f"{name}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in CONFIGS_DIR.glob("*.toml"))
            raise UserError(f"no packaged world config {name!r}; known: {', '.join(known)}")
        return cls.from_toml(path)

    @classmethod
    def tiny(cls, base: "WorldConfig | None" = None) -> "WorldConfig":
        """A world small enough for unit tests that still populates every 001 segment: the
        catalogue and sizes shrunk, the behaviour of ``base`` (default: today's defaults; e.g.
        ``WorldConfig.named("v1")`` for tests calibrated on the v1 world's traffic)."""
        sizes = dict(
            keywords_per_facet=10, n_categories=8, category_words=12, applicable_sps_per_category=24,
            n_filler_words=60, n_ads=600, queries_per_category=6, modifiers_per_facet=2,
            n_users=400, days=8, behaviour_users=400, behaviour_events_mean=20.0,
            behaviour_events_max=80)
        if base is not None:
            sizes["n_users"] = 1_500
            return base.replace(**sizes)
        return cls(**sizes).validate()


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
