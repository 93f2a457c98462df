"""Shared embeddings for every cascade model (000 §III: "shared embeddings for all inputs").

One ``StringLookup`` + ``Embedding`` per vocabulary named in spec.json, so features that name the
same vocabulary (``item_id`` and ``hist_item_id``) share one table. Raw strings go in; nothing
outside the model needs to know the vocabularies.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfrs_models.cascade.input import DatasetSpec


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """The serialisable part of a DatasetSpec that a model needs (plain dicts and lists)."""

    features: list[dict]        # [{"name", "dtype", "vocab", "group", "part", "max_length"}]
    vocabularies: dict[str, dict]  # {vocab: {"path", "size", "num_oov_buckets"}}
    sequence_length: int
    # {float feature: {"mean", "std"}} from the train split; SharedEmbeddings standardises with it.
    float_stats: dict[str, dict] = dataclasses.field(default_factory=dict)
    # {label: positive rate} on train (spec.json label_rates); the heads start at these rates.
    label_rates: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: DatasetSpec, float_stats: dict | None = None) -> "InputLayout":
        features = [{"name": f.name, "dtype": f.dtype, "vocab": f.vocab, "group": f.group,
                     "part": f.part, "max_length": f.max_length, "kind": f.kind}
                    for f in spec.model_features]
        used = {f["vocab"] for f in features if f["vocab"]}
        vocabs = {n: {"path": str(v.path), "size": v.size, "num_oov_buckets": v.num_oov_buckets}
                  for n, v in spec.vocabularies.items() if n in used}
        rates = {k: float(v) for k, v in spec.label_rates.get("train", {}).items()}
        return cls(features=features, vocabularies=vocabs, sequence_length=spec.sequence_length,
                   float_stats=dict(float_stats or {}), label_rates=rates)

    @property
    def has_sequence(self) -> bool:
        return self.sequence_length > 0


class SharedEmbeddings(tf.keras.layers.Layer):
    """Looks up every model feature and groups the embeddings the towers and encoders read.

    Call returns a dict:
      ``fields``    [B, F, D]  embeddings of the F categorical context features (spec order);
      ``dense``     [B, F_d]   float context features, standardised (F_d may be 0);
      ``candidate`` [B, D_c]   concat of the ``item``-group embeddings (the attention query);
      ``profile``   [B, D_p]   concat of the ``user_profile`` group (``user`` if there is none);
      ``sequence``  [B, L, E]  per-event concat of the feature-list embeddings and standardised
                               floats (padded events are zeroed by the encoders, not here);
      ``mask``      [B, L]     True for real events (``hist`` id != "").
    For a flat dataset (no feature lists) ``sequence`` is ``fields`` and ``mask`` is all True,
    as 000 runs its 1D convolution over the stacked field embeddings of Ali-CCP.
    """

    def __init__(self, layout: dict, embedding_dim: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.layout = layout if isinstance(layout, dict) else dataclasses.asdict(layout)
        self.embedding_dim = embedding_dim
        self._lookups, self._tables = {}, {}
        for name, v in sorted(self.layout["vocabularies"].items()):
            self._lookups[name] = tf.keras.layers.StringLookup(
                vocabulary=v["path"], mask_token="", num_oov_indices=v["num_oov_buckets"],
                name=f"lookup_{name}")
            self._tables[name] = tf.keras.layers.Embedding(
                v["size"] + v["num_oov_buckets"] + 1, embedding_dim, name=f"embedding_{name}")
        feats = self.layout["features"]
        self.context_categorical = [f for f in feats if f["part"] != "sequence" and f["vocab"]]
        self.context_dense = [f for f in feats if f["part"] != "sequence" and not f["vocab"]]
        self.sequence_features = [f for f in feats if f["part"] == "sequence"]
        self.has_sequence = bool(self.sequence_features)
        groups = {f["group"] for f in self.context_categorical}
        profile_group = "user_profile" if "user_profile" in groups else "user"
        self.profile_names = [f["name"] for f in self.context_categorical if f["group"] == profile_group]
        self.candidate_names = [f["name"] for f in self.context_categorical if f["group"] == "item"]
        # Track the per-vocab layers as attributes so they are saved.
        self.lookup_layers = [self._lookups[n] for n in sorted(self._lookups)]
        self.embedding_layers = [self._tables[n] for n in sorted(self._tables)]

    def _standardise(self, feature: dict, value):
        """(x − mean) / std with the train statistics of the layout (identity without them)."""
        stats = self.layout.get("float_stats", {}).get(feature["name"])
        value = tf.cast(value, tf.float32)
        if stats is None:
            return value
        return (value - stats["mean"]) / stats["std"]

    def _embed(self, feature: dict, value):
        ids = self._lookups[feature["vocab"]](value)
        return self._tables[feature["vocab"]](ids)

    def call(self, features):
        embedded = {f["name"]: self._embed(f, features[f["name"]]) for f in self.context_categorical}
        fields = tf.stack([embedded[f["name"]] for f in self.context_categorical], axis=1)
        batch = tf.shape(fields)[0]
        if self.context_dense:
            dense = tf.stack([self._standardise(f, features[f["name"]]) for f in self.context_dense], 1)
        else:
            dense = tf.zeros([batch, 0], tf.float32)
        out = {
            "fields": fields,
            "dense": dense,
            "candidate": tf.concat([embedded[n] for n in self.candidate_names], axis=-1),
            "profile": tf.concat([embedded[n] for n in self.profile_names], axis=-1),
        }
        if self.has_sequence:
            steps, mask = [], None
            for f in self.sequence_features:
                value = features[f["name"]]
                if f["vocab"]:
                    steps.append(self._embed(f, value))
                    if mask is None:
                        mask = tf.not_equal(value, "")
                else:
                    steps.append(self._standardise(f, value)[..., tf.newaxis])
            out["sequence"] = tf.concat(steps, axis=-1)
            out["mask"] = mask
        else:
            out["sequence"] = fields
            out["mask"] = tf.ones(tf.shape(fields)[:2], tf.bool)
        return out

    def get_config(self):
        return {**super().get_config(), "layout": self.layout, "embedding_dim": self.embedding_dim}
