"""Typed configuration of the selling-point family (no TensorFlow import)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from adpush_core.errors import UserError

MODELS = ("bm", "mtdl", "amtdl")
STRATEGIES = ("joint", "alternating", "pretrain_finetune")
JOINT_BATCHES = ("equal", "proportional")


INTERACTIONS = ("dot", "cross", "none")
TITLE_POOLING = ("attention", "appeal")
HISTORY_POOLING = ("per_feature", "group")


@dataclass
class ModelConfig:
    """Architecture. ``name``: ``bm`` (Eq. 4–9), ``mtdl`` (+ad-click head, Eq. 10–15),
    ``amtdl`` (+``user_profile`` and ``query_extra`` groups).

    ``interactions`` (issue 13): explicit crosses of the candidate (keyword, or pooled ad title)
    with the pooled user / history / profile / query groups —
    ``dot``: one dot product per group fed to the output layer beside the MLP (FM-style, as
    DeepFM's FM part); ``cross``: a DCN-v2 cross layer (``tfrs.layers.dcn.Cross``) on the MLP
    input; ``none``: 001's plain MLP. ``dot`` won on the demo world's validation logloss (AMTDL
    joint, no MLP: dot 0.14320, cross 0.14323; with the MLP, dot 0.14335).
    ``use_user_id`` (default off): the ``user_id`` embedding overfits at ~10 SF rows per user
    (demo: 0.620 with it, 0.635 without); 001 characterises a user by its click history.
    ``ad_context``: the ad head also reads the ad id, category and position (not only the
    attention-pooled title).
    """

    name: str = "mtdl"
    embedding_dim: int = 16
    # No MLP by default: on the demo world (AMTDL joint, the same prior and lr 1e-3) the (64, 32)
    # MLP over the concatenated vectors reached valid logloss 0.14368, the dots alone 0.14264.
    hidden_units: tuple[int, ...] = ()
    attention_units: int = 16
    dropout: float = 0.0                     # on the MLP input and hidden layers (training only)
    embedding_l2: float = 0.0                # L2 on the embedding rows a batch looks up
    # Gaussian prior on every embedding row: λ·Σ‖E‖²/N_train (N = SF train rows) added to the
    # mean training loss once per step, whatever the batch holds — a MAP fit. The per-lookup L2
    # above charges a row once per occurrence, so the profile rows (in every example) pay ~10⁴×
    # more than a keyword row and the profile × keyword term was never learnt. λ = 10 over 3:
    # demo world (AMTDL joint, lr 1e-2) valid logloss 0.14650 vs 0.14692 (seed 0) and 0.14336
    # vs 0.14418 (seed 1); default world test AUC 0.7108 vs 0.7095.
    embedding_prior: float = 10.0
    exclude_features: tuple[str, ...] = ()   # spec features left out (ablations)
    interactions: str = "dot"
    cross_layers: int = 1
    use_user_id: bool = False
    ad_context: bool = True
    # std of the N(0, σ²) initial embedding rows (0 = Keras' uniform ±0.05). Dot crosses of two
    # near-zero vectors start at a saddle and are learnt only after thousands of steps.
    embedding_init_std: float = 0.05
    # ``per_feature``: each history feature (SF keywords clicked, title tokens of ads clicked) is
    # pooled on its own and gets its own cross with the candidate; ``group``: 001's one mean
    # over the whole group, where the ~3x longer title bags (filler and category words included)
    # drown the SF keywords.
    history_pooling: str = "per_feature"
    # A per-token scalar bias (the keyword's popularity) added to the SF logit, and its
    # attention-weighted sum over the title tokens to the ad logit: the same ``b_v`` in both.
    item_bias: bool = True
    # How the ad head reads the title. ``attention``: 001's Eq. 11–13, an additive MLP score
    # per token, the pooled title vector into the shared MLP / dots. ``appeal``: each token is
    # scored by the SF head's own keyword score (b_v + Σ_g w_g·<φ_v, e_g>), the title counts as
    # the softmax-weighted sum of those scores, so ad clicks train the parameters the SF task
    # ranks keywords with (``tfrs_models/layers/appeal_title_pooling.py``). Demo world, seed 0,
    # AMTDL joint with user_id and proportional batches: valid logloss 0.14451 (appeal) vs
    # 0.14454 (attention), test AUC 0.7229 vs 0.7205 — a tie on validation; ``appeal`` is the
    # default because it is the form of the world's ad-click model, so the auxiliary task
    # transfers to the SF ranking by construction (001 Table 3's mechanism) rather than by luck.
    title_pooling: str = "appeal"

    def __post_init__(self):
        if self.name not in MODELS:
            raise ValueError(f"model name must be one of {MODELS}, got {self.name!r}")
        if isinstance(self.interactions, bool):  # run configs written before issue 13
            self.interactions = "dot" if self.interactions else "none"
        if self.interactions not in INTERACTIONS:
            raise ValueError(f"interactions must be one of {INTERACTIONS}, got {self.interactions!r}")
        if self.title_pooling not in TITLE_POOLING:
            raise ValueError(f"title_pooling must be one of {TITLE_POOLING}, got {self.title_pooling!r}")
        if self.title_pooling == "appeal" and self.interactions != "dot" and not self.item_bias:
            raise ValueError("title_pooling='appeal' scores title tokens with the SF head's "
                             "keyword score (b_v + the candidate x group dots): it needs "
                             "interactions='dot' or item_bias")
        if self.history_pooling not in HISTORY_POOLING:
            raise ValueError(f"history_pooling must be one of {HISTORY_POOLING}, "
                             f"got {self.history_pooling!r}")
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        self.exclude_features = tuple(str(f) for f in self.exclude_features)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def multi_task(self) -> bool:
        return self.name != "bm"

    @property
    def excluded(self) -> tuple[str, ...]:
        """Every feature the model leaves out: ``exclude_features``, and ``user_id`` unless
        ``use_user_id``."""
        return self.exclude_features + (() if self.use_user_id else ("user_id",))


@dataclass
class TrainConfig:
    """Training. ``k``: auxiliary:main draw ratio of Algorithm 1 (None = rows(ad)/rows(sf)).
    Every phase stops when the validation logloss has not improved for ``patience`` epochs
    (or at the epoch cap) and keeps its best-logloss weights."""

    strategy: str = "joint"
    epochs: int = 40                 # a cap: early stopping on validation logloss ends runs
    batch_size: int = 256
    learning_rate: float = 1e-3
    k: float | None = None
    patience: int = 5                # epochs without a better validation logloss
    # A validation logloss counts as better (resets patience, becomes the kept weights) only
    # if it is lower than the best so far by more than this (Keras EarlyStopping's min_delta).
    min_improvement: float = 0.0
    pretrain_epochs: int = 40
    seed: int = 0
    # joint: ``equal`` — each step one batch of ``batch_size`` rows from each source (an epoch
    # is one pass over the SF rows and 1/k of the ad rows; an ad row weighs 1/k of an SF row);
    # ``proportional`` — the ad batch holds k·batch_size rows (k = rows(ad)/rows(sf)), so an
    # epoch is one pass over both train splits and every row of either weighs the same.
    # Demo world, seed 0, AMTDL appeal + user_id: valid logloss 0.14451 (proportional) vs
    # 0.14617 (equal), test AUC 0.7229 vs 0.7103: under ``equal`` the ~3x more ad rows count a
    # third each and an epoch sees a third of them.
    joint_batches: str = "proportional"
    # Decay of an exponential moving average of the weights (0 = off): validation, the best
    # checkpoint and the exported model use the average, not the last Adam iterate.
    weight_average: float = 0.0
    # Hold the train splits in memory, parsed once, and draw each epoch's batches from a fresh
    # permutation (input.InMemorySplit) instead of gunzipping and parsing the files every epoch.
    cache_input: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.joint_batches not in JOINT_BATCHES:
            raise ValueError(f"joint_batches must be one of {JOINT_BATCHES}, got {self.joint_batches!r}")
        if not self.min_improvement >= 0.0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement!r}")
        if not 0.0 <= self.weight_average < 1.0:
            raise ValueError(f"weight_average must be in [0, 1), got {self.weight_average!r}")


# Keys that runs written by earlier versions hold and that no longer mean anything.
LEGACY_TRAIN_KEYS = ("checkpoint_every_steps",)


@dataclass
class RunConfig:
    """Everything saved to ``RUN/config.json`` (docs/contracts.md §6, the run directory)."""

    family: str = "selling_point"
    data_dir: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def datasets(self) -> tuple[str, ...]:
        """The spec.json datasets the run trains on: ``sf``, and ``ad_click`` for the two-task
        models."""
        return ("sf", "ad_click") if self.model.multi_task else ("sf",)

    def to_dict(self) -> dict:
        raw = asdict(self)
        return {"family": raw["family"], "data_dir": raw["data_dir"],
                "datasets": list(self.datasets), "model": raw["model"], "train": raw["train"]}

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        """The inverse of :meth:`to_dict`; also reads runs written before the model's ``name``
        was called ``model`` or with keys since removed (``LEGACY_TRAIN_KEYS``)."""
        model = dict(raw.get("model", {}))
        if "model" in model:
            model["name"] = model.pop("model")
        train = {k: v for k, v in raw.get("train", {}).items() if k not in LEGACY_TRAIN_KEYS}
        for section, values, kind in (("model", model, ModelConfig), ("train", train, TrainConfig)):
            unknown = sorted(set(values) - {f.name for f in fields(kind)})
            if unknown:
                raise UserError(f"config.json {section}: unknown keys {unknown}")
        return cls(family=raw.get("family", "selling_point"), data_dir=raw.get("data_dir", ""),
                   model=ModelConfig(**model), train=TrainConfig(**train))
