"""Typed configuration of the selling-point family (no TensorFlow import)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODELS = ("bm", "mtdl", "amtdl")
STRATEGIES = ("joint", "alternating", "pretrain_finetune")


@dataclass
class ModelConfig:
    """Architecture. ``model``: ``bm`` (Eq. 4–9), ``mtdl`` (+ad-click head, Eq. 10–15),
    ``amtdl`` (+``user_profile`` and ``query_extra`` groups)."""

    model: str = "mtdl"
    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (64, 32)
    attention_units: int = 16
    dropout: float = 0.0                     # on the MLP input and hidden layers (training only)
    embedding_l2: float = 0.0                # L2 on the embedding rows a batch looks up
    exclude_features: tuple[str, ...] = ()   # spec features left out (ablations)
    # Also feed the MLP the elementwise products of each pooled user/query group with the item
    # vector (keyword, or pooled title): the click logit of the world is a dot product.
    interactions: bool = False

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        self.exclude_features = tuple(str(f) for f in self.exclude_features)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def multi_task(self) -> bool:
        return self.model != "bm"


@dataclass
class TrainConfig:
    """Training. ``k``: auxiliary:main draw ratio of Algorithm 1 (None = rows(ad)/rows(sf))."""

    strategy: str = "joint"
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    k: float | None = None
    patience: int = 2
    pretrain_epochs: int = 10
    seed: int = 0
    checkpoint_every_steps: int = 0  # 0 = at each epoch end only

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")


@dataclass
class RunConfig:
    """Everything saved to ``RUN/config.json``."""

    family: str = "selling_point"
    data_dir: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        return cls(family=raw.get("family", "selling_point"), data_dir=raw.get("data_dir", ""),
                   model=ModelConfig(**raw.get("model", {})),
                   train=TrainConfig(**raw.get("train", {})))
