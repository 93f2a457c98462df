"""Spec-driven input for the cascade family: `sequence` (tf.train.SequenceExample) and
`cascade_flat` (tf.train.Example) datasets as described in docs/contracts.md §2 and §5.

Nothing here keeps a feature list: every parser is built from ``OUT/spec.json``.
Sequence feature lists are truncated to their ``max_length`` keeping the most recent events and
**left-padded** with ``""`` / 0, so position ``max_length - 1`` is always the latest event and a
fixed-length tensor reaches the convolutional click tower.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from adpush_core.tfenv import import_tensorflow

SEQUENCE_PROTO = "tf.train.SequenceExample"
EXAMPLE_PROTO = "tf.train.Example"
CLICK_LABEL = "click"
CONVERSION_LABEL = "conversion"


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One entry of ``datasets.<name>.features`` in spec.json."""

    name: str
    dtype: str
    kind: str = "scalar"
    role: str = "feature"
    group: str | None = None
    vocab: str | None = None
    max_length: int | None = None
    part: str = "context"

    @property
    def is_sequence(self) -> bool:
        return self.part == "sequence"

    @property
    def is_categorical(self) -> bool:
        return self.vocab is not None


@dataclasses.dataclass(frozen=True)
class VocabSpec:
    name: str
    path: Path
    size: int
    num_oov_buckets: int = 1


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the models need to know about one dataset of spec.json."""

    data_dir: Path
    name: str
    proto: str
    compression: str
    files: dict[str, "str | list[str]"]  # per split: exact files (relative), or a legacy glob
    labels: tuple[str, ...]
    key: tuple[str, ...]
    features: dict[str, FeatureSpec]
    vocabularies: dict[str, VocabSpec]
    label_rates: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    row_counts: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def model_features(self) -> list[FeatureSpec]:
        """Inputs a model reads (role ``feature``), in spec order."""
        return [f for f in self.features.values() if f.role == "feature"]

    @property
    def sequence_features(self) -> list[FeatureSpec]:
        return [f for f in self.model_features if f.is_sequence]

    @property
    def context_features(self) -> list[FeatureSpec]:
        return [f for f in self.model_features if not f.is_sequence]

    @property
    def sequence_length(self) -> int:
        """Common padded length of the feature lists (0 for a flat dataset)."""
        lengths = {f.max_length for f in self.sequence_features}
        if not lengths:
            return 0
        if len(lengths) != 1 or None in lengths:
            raise ValueError(f"feature lists of {self.name!r} need one common max_length, got {lengths}")
        return int(lengths.pop())


def load_spec(data_dir: str | Path, dataset: str | None = None) -> DatasetSpec:
    """Read ``data_dir/spec.json`` and return the cascade dataset (``sequence`` if present,
    else ``cascade_flat``, or the one named by ``dataset``)."""
    data_dir = Path(data_dir)
    raw = json.loads((data_dir / "spec.json").read_text())
    datasets = raw["datasets"]
    if dataset is None:
        dataset = next((d for d in ("sequence", "cascade_flat") if d in datasets), None)
        if dataset is None:
            raise ValueError(f"{data_dir}/spec.json has no 'sequence' or 'cascade_flat' dataset")
    ds = datasets[dataset]
    features = {}
    for name, f in ds["features"].items():
        features[name] = FeatureSpec(
            name=name, dtype=f["dtype"], kind=f.get("kind", "scalar"), role=f.get("role", "feature"),
            group=f.get("group"), vocab=f.get("vocab"), max_length=f.get("max_length"),
            part=f.get("part", "context"))
    vocabs = {name: VocabSpec(name=name, path=data_dir / v["file"], size=int(v["size"]),
                              num_oov_buckets=int(v.get("num_oov_buckets", 1)))
              for name, v in raw["vocabularies"].items()}
    for label in (CLICK_LABEL, CONVERSION_LABEL):
        if label not in ds["labels"]:
            raise ValueError(f"dataset {dataset!r} lacks label {label!r} (labels: {ds['labels']})")
    return DatasetSpec(data_dir=data_dir, name=dataset, proto=ds["proto"],
                       compression=ds.get("compression", "GZIP"), files=dict(ds["files"]),
                       labels=tuple(ds["labels"]), key=tuple(ds.get("key", ())),
                       features=features, vocabularies=vocabs,
                       label_rates=dict(ds.get("label_rates", {})),
                       row_counts={k: int(v) for k, v in ds.get("row_counts", {}).items()})


def _tf_dtype(tf, dtype: str):
    return {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[dtype]


def _default(tf, dtype: str):
    return {"string": "", "int64": 0, "float32": 0.0}[dtype]


def _parsing_spec(tf, f: FeatureSpec):
    dtype = _tf_dtype(tf, f.dtype)
    if f.is_sequence or f.kind == "varlen":
        return tf.io.RaggedFeature(dtype)
    return tf.io.FixedLenFeature([], dtype, default_value=_default(tf, f.dtype))


def left_pad(tf, ragged, max_length: int, pad_value):
    """Keep the last ``max_length`` values of each row and left-pad to ``[B, max_length]``.

    Args:
      ragged: RaggedTensor [B, (T)], most recent value last.
    Returns:
      Dense [B, max_length]; row b ends with its most recent value at index max_length - 1.
    """
    ragged = ragged[:, -max_length:]
    lengths = tf.cast(ragged.row_lengths(), tf.int32)                            # [B]
    right = ragged.to_tensor(default_value=pad_value, shape=[None, max_length])  # [B, L]
    source = tf.range(max_length)[tf.newaxis, :] - (max_length - lengths)[:, tf.newaxis]
    shifted = tf.gather(right, tf.maximum(source, 0), batch_dims=1)
    return tf.where(source >= 0, shifted, tf.cast(pad_value, right.dtype))


def parse_batch(serialized, spec: DatasetSpec) -> dict[str, Any]:
    """Parse a batch of serialized records into a dict of dense tensors.

    Returns:
      ``{name: tensor}`` for every feature, label and key of the dataset: scalars ``[B]``,
      varlen context features ``[B, max_length]`` (right-padded), feature lists
      ``[B, sequence_length]`` (left-padded, most recent last).
    """
    tf = import_tensorflow()

    context = {f.name: _parsing_spec(tf, f) for f in spec.features.values() if not f.is_sequence}
    sequence = {f.name: _parsing_spec(tf, f) for f in spec.features.values() if f.is_sequence}
    if spec.proto == SEQUENCE_PROTO:
        parsed_ctx, parsed_seq, _ = tf.io.parse_sequence_example(
            serialized, context_features=context, sequence_features=sequence)
    else:
        parsed_ctx, parsed_seq = tf.io.parse_example(serialized, context), {}
    out = {}
    for name, value in parsed_ctx.items():
        f = spec.features[name]
        if isinstance(value, tf.RaggedTensor):
            value = value[:, : f.max_length].to_tensor(default_value=_default(tf, f.dtype),
                                                       shape=[None, f.max_length])
        out[name] = value
    for name, value in parsed_seq.items():
        f = spec.features[name]
        if value.ragged_rank == 2:  # [B, (T), (1)]: one value per event
            value = value.merge_dims(1, 2)
        out[name] = left_pad(tf, value, f.max_length, _default(tf, f.dtype))
    return out


def float_statistics(spec: DatasetSpec, rows: int = 8192) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every float model feature on the first ``rows`` records of
    the *train* split (real events only for feature lists: padding is excluded).

    The models standardise float inputs with these (features.SharedEmbeddings): a raw
    ``hist_time_gap`` (log1p seconds, about 5–14 and always positive) otherwise dominates every
    freshly initialised projection, and the first steps that pull all outputs down to the base
    rate pull them down most for long histories — a ranking by history length, below chance
    wherever longer histories click more.
    """
    import numpy as np

    floats = [f for f in spec.model_features if f.dtype == "float32"]
    if not floats:
        return {}
    batch = next(iter(make_dataset(spec, "train", rows)))
    mask_name = next((f.name for f in spec.sequence_features if f.dtype == "string"), None)
    stats = {}
    for f in floats:
        value = batch[f.name].numpy().astype(np.float64)
        if f.is_sequence and mask_name is not None:
            value = value[batch[mask_name].numpy() != b""]
        value = value.reshape(-1)
        mean = float(value.mean()) if value.size else 0.0
        std = float(value.std()) if value.size else 1.0
        stats[f.name] = {"mean": mean, "std": std if std > 1e-6 else 1.0}
    return stats


# Parsed, cached examples per (data dir, dataset, split): shared by every run of a process
# (``adpush compare`` trains 15+ models on the same splits).
_PARSED: dict = {}


def split_files(spec: DatasetSpec, split: str) -> list[str]:
    """The files of one split, exactly as spec.json lists them (tfrs_models.input)."""
    from tfrs_models.input import resolve_split_files  # noqa: PLC0415

    return resolve_split_files(spec.data_dir, spec.files[split])


def make_dataset(spec: DatasetSpec, split: str, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, repeat: bool = False, cache: bool = False,
                 parse_batch_size: int = 1024):
    """A ``tf.data.Dataset`` of parsed feature dicts for one split (train/valid/test).

    Files are read in sorted order; with ``shuffle`` the records are shuffled with ``seed`` so a
    run is reproducible. Records are parsed ``parse_batch_size`` at a time (parsing has a large
    per-call cost) and re-batched to ``batch_size``; with ``cache`` the parsed examples are kept
    in memory (and shared by later calls in the process), so later epochs and runs skip
    decompression and parsing.
    """
    tf = import_tensorflow()

    files = split_files(spec, split)
    compression = "" if spec.compression in ("", "NONE", None) else spec.compression
    key = (str(spec.data_dir), spec.name, split)
    ds = _PARSED.get(key) if cache else None
    if ds is None:
        ds = tf.data.TFRecordDataset(files, compression_type=compression)
        ds = ds.batch(max(batch_size, parse_batch_size)).map(lambda s: parse_batch(s, spec),
                                                              num_parallel_calls=1)
        ds = ds.unbatch()
        if cache:
            ds = _PARSED[key] = ds.cache()
    if shuffle:
        ds = ds.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(2)
