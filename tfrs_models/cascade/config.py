"""Typed configuration of a cascade run (model, encoder and training budget)."""
from __future__ import annotations

import dataclasses

from tfrs_models.cascade.encoders.registry import EncoderConfig

MODELS = ("cnn_attention", "shared_bottom", "esmm", "mmoe", "aitm")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters shared by all cascade models; each model reads the fields it needs.

    ``calibrator_weight`` is α of Eq. (7) of 000; None means the model's default (0.6 for
    cnn_attention and AITM — AITM's default — and 0 for the baselines without a calibrator).
    """

    name: str = "cnn_attention"
    embedding_dim: int = 8
    embedding_l2: float = 0.0     # mini-batch aware L2 on the looked-up embedding rows
    embedding_prior: float = 0.0  # Gaussian prior on every table row: λ·Σ‖E‖²/N_train per step
    exclude_features: tuple[str, ...] = ()   # spec features left out (ablations)
    history_matches: bool = True  # candidate-match channels per event (features.SharedEmbeddings)
    history_summary: bool = True  # target-aware history counts and recencies in ``dense``
    history_decay: bool = True    # + time-decayed counts with learnt half-lives (needs the summary)
    field_interactions: bool = False  # pairwise inner products of the context field embeddings
    tower_units: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    calibrator_weight: float | None = None
    # 000 click tower: one entry per Conv1D layer (Eq. 1).
    conv_filters: tuple[int, ...] = (32, 16)
    conv_kernel_sizes: tuple[int, ...] = (3, 3)
    conv_strides: tuple[int, ...] = (1, 2)
    conv_paddings: tuple[int, ...] = (1, 1)
    attention_units: int = 32     # d of Eq. (2)
    # MMoE
    num_experts: int = 4
    expert_units: tuple[int, ...] = (64,)
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Defaults chosen on the demo world's validation split (README: the lr sweep)."""

    batch_size: int = 512
    epochs: int = 3
    learning_rate: float = 2e-3
    steps_per_epoch: int | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything saved to ``RUN/config.json`` (docs/contracts.md §6, the run directory)."""

    data_dir: str
    dataset: str  # the spec.json dataset trained on: ``sequence`` or ``cascade_flat``
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    family: str = "cascade"

    def to_dict(self) -> dict:
        return {"family": self.family, "data_dir": self.data_dir, "datasets": [self.dataset],
                "model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        """The inverse of :meth:`to_dict`; also reads runs written before ``datasets`` (a
        single ``dataset``)."""
        datasets = raw["datasets"] if "datasets" in raw else [raw["dataset"]]
        model = dict(raw.get("model", {}))
        encoder = EncoderConfig(**_tuples(EncoderConfig, model.pop("encoder", {})))
        return cls(data_dir=raw["data_dir"], dataset=datasets[0],
                   model=ModelConfig(encoder=encoder, **_tuples(ModelConfig, model)),
                   train=TrainConfig(**raw.get("train", {})))


def _tuples(kind, values: dict) -> dict:
    """JSON lists back to the tuples of ``kind``'s tuple-valued fields."""
    tuple_fields = {f.name for f in dataclasses.fields(kind) if isinstance(f.default, tuple)}
    return {k: tuple(v) if k in tuple_fields and v is not None else v for k, v in values.items()}
