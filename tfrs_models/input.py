"""Spec-driven tf.data input for both model families: ``OUT/spec.json`` + TFRecords → batches.

Nothing here keeps a feature list by hand: names, dtypes, lengths, vocabularies, roles and the
proto of each dataset all come from ``spec.json`` (docs/contracts.md §2). Records are parsed a
batch at a time (``tf.io.parse_example`` for ``tf.train.Example``,
``tf.io.parse_sequence_example`` for ``tf.train.SequenceExample``):

* varlen context features keep their first ``max_length`` values and are **right**-padded;
* feature lists (``part: sequence``) keep their last ``max_length`` events and are
  **left**-padded, so position ``max_length - 1`` is always the latest event;

with ``""`` for strings and 0 for numbers, so a padded position is recognisable by the model (the
vocabulary maps ``""`` to index 0, the mask index).

:func:`dataset_batches` builds the batches of one split in one of two orders (``ORDERS``): the
selling-point family's ``interleave_blocks`` and the cascade family's ``sequential_records``.
"""
from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow

EXAMPLE_PROTO = "tf.train.Example"
SEQUENCE_PROTO = "tf.train.SequenceExample"
COMPRESSIONS = {"GZIP": "GZIP", "ZLIB": "ZLIB", "NONE": "", "": ""}
ORDERS = ("interleave_blocks", "sequential_records")


@dataclass(frozen=True)
class VocabSpec:
    """One vocabulary: ``path`` holds real tokens only, one a line."""

    name: str
    path: str
    size: int
    num_oov_buckets: int = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One entry of ``datasets.<name>.features`` in spec.json."""

    name: str
    dtype: str  # string | int64 | float32
    kind: str = "scalar"  # scalar | varlen
    role: str = "feature"  # feature | label | key | meta
    group: str | None = None
    vocab: str | None = None
    max_length: int | None = None
    part: str = "context"  # context | sequence (a feature list of a SequenceExample)

    @property
    def is_varlen(self) -> bool:
        return self.kind == "varlen"

    @property
    def is_sequence(self) -> bool:
        return self.part == "sequence"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset (``sf``, ``ad_click``, ``sequence``, ``cascade_flat``, …) of spec.json, with
    the data directory (``root``) and the vocabularies it needs to be read on its own."""

    name: str
    root: str
    proto: str
    compression: str  # "GZIP" | "ZLIB" | "" (none)
    files: dict[str, "str | list[str]"]  # per split: exact files (relative), or a legacy glob
    row_counts: dict[str, int]
    labels: tuple[str, ...]
    key: tuple[str, ...]
    features: dict[str, FeatureSpec]
    vocabularies: dict[str, VocabSpec] = field(default_factory=dict)
    label_rates: dict = field(default_factory=dict)  # {split: {label: rate}}

    def model_features(self, groups=None) -> list[FeatureSpec]:
        """Features with ``role: feature`` (whose group is in ``groups``, if given), in spec order."""
        return [f for f in self.features.values()
                if f.role == "feature" and (groups is None or f.group in groups)]

    @property
    def sequence_features(self) -> list[FeatureSpec]:
        return [f for f in self.model_features() if f.is_sequence]

    @property
    def context_features(self) -> list[FeatureSpec]:
        return [f for f in self.model_features() if not f.is_sequence]

    @property
    def sequence_length(self) -> int:
        """Common padded length of the feature lists (0 for a dataset without any)."""
        lengths = {f.max_length for f in self.sequence_features}
        if not lengths:
            return 0
        if len(lengths) != 1:
            raise UserError(f"{self.root}/spec.json: the feature lists of {self.name!r} need one "
                            f"common max_length, got {sorted(lengths)}")
        return int(lengths.pop())

    def split_files(self, split: str) -> list[str]:
        """The TFRecord files of one split: the exact list spec.json names (build-data writes
        one, so files another build left in the folder are never read), or a glob in older
        specs."""
        if split not in self.files:
            raise UserError(f"dataset {self.name!r} of {self.root}/spec.json has no split "
                            f"{split!r} (it has {sorted(self.files)})")
        return resolve_split_files(Path(self.root), self.files[split])


@dataclass(frozen=True)
class DataSpec:
    """The whole spec.json, with file paths resolved against the data directory."""

    root: str
    source: str
    vocabularies: dict[str, VocabSpec]
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)

    def dataset(self, name: str, labels=()) -> DatasetSpec:
        """The dataset ``name``; UserError when spec.json lacks it or any of ``labels``."""
        if name not in self.datasets:
            raise UserError(f"{self.root}/spec.json has no dataset {name!r} "
                            f"(it has {sorted(self.datasets)})")
        ds = self.datasets[name]
        missing = [label for label in labels if label not in ds.labels]
        if missing:
            raise UserError(f"dataset {name!r} of {self.root}/spec.json lacks the labels "
                            f"{missing} (labels: {list(ds.labels)})")
        return ds

    def label_rate(self, dataset: str, split: str, label: str) -> float | None:
        """The share of positive ``label`` in ``dataset``'s ``split`` (spec.json), or None."""
        rates = self.datasets.get(dataset)
        value = rates.label_rates.get(split, {}).get(label) if rates else None
        return None if value is None else float(value)


def load_spec(data_dir) -> DataSpec:
    """Read ``data_dir/spec.json`` (format_version 1); UserError naming the file and the field
    when it is missing or malformed."""
    root = Path(data_dir)
    path = root / "spec.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `adpush build-data` first")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not JSON: {err}") from None
    if raw.get("format_version") != 1:
        raise UserError(f"{path}: format_version {raw.get('format_version')!r}, expected 1")
    try:
        vocabularies = {
            name: VocabSpec(name=name, path=str(root / v["file"]), size=int(v["size"]),
                            num_oov_buckets=int(v.get("num_oov_buckets", 1)))
            for name, v in raw.get("vocabularies", {}).items()
        }
        datasets = {name: _dataset_spec(root, name, d, vocabularies)
                    for name, d in raw.get("datasets", {}).items()}
    except KeyError as err:
        raise UserError(f"{path}: a required field is missing: {err}") from None
    return DataSpec(root=str(root), source=raw.get("source", ""), vocabularies=vocabularies,
                    datasets=datasets)


def _dataset_spec(root: Path, name: str, d: dict, vocabularies: dict) -> DatasetSpec:
    where = f"{root}/spec.json datasets.{name}"
    compression = d.get("compression")
    if compression not in COMPRESSIONS:
        raise UserError(f"{where}.compression is {compression!r}; expected one of "
                        f"{sorted(k for k in COMPRESSIONS if k)} or \"NONE\"")
    proto = d.get("proto", EXAMPLE_PROTO)
    if proto not in (EXAMPLE_PROTO, SEQUENCE_PROTO):
        raise UserError(f"{where}.proto is {proto!r}; expected {EXAMPLE_PROTO} or {SEQUENCE_PROTO}")
    features = {}
    for fname, f in d["features"].items():
        feature = FeatureSpec(name=fname, dtype=f["dtype"], kind=f.get("kind", "scalar"),
                              role=f.get("role", "feature"), group=f.get("group"),
                              vocab=f.get("vocab"), max_length=f.get("max_length"),
                              part=f.get("part", "context"))
        if feature.dtype not in ("string", "int64", "float32"):
            raise UserError(f"{where}.features.{fname}.dtype is {feature.dtype!r}")
        if (feature.is_varlen or feature.is_sequence) and not feature.max_length:
            raise UserError(f"{where}.features.{fname} is a list but has no max_length")
        if feature.is_sequence and proto != SEQUENCE_PROTO:
            raise UserError(f"{where}.features.{fname} has part 'sequence' in a {proto} dataset")
        if feature.vocab is not None and feature.vocab not in vocabularies:
            raise UserError(f"{where}.features.{fname} names vocabulary {feature.vocab!r}, "
                            f"which spec.json does not list")
        features[fname] = feature
    return DatasetSpec(
        name=name, root=str(root), proto=proto, compression=COMPRESSIONS[compression],
        files=dict(d["files"]), row_counts={k: int(v) for k, v in d.get("row_counts", {}).items()},
        labels=tuple(d.get("labels", ())), key=tuple(d.get("key", ())), features=features,
        vocabularies=vocabularies, label_rates=dict(d.get("label_rates", {})))


def resolve_split_files(root: Path, files) -> list[str]:
    """spec.json's ``files[split]`` (a list of paths relative to it, or a legacy glob) -> paths;
    UserError when a listed file is missing or a glob matches nothing."""
    if isinstance(files, str):
        found = sorted(glob.glob(str(root / files)))
        if not found:
            raise UserError(f"no files match {root / files}")
        return found
    paths = [str(root / f) for f in files]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"{root}/spec.json lists files that do not exist: {', '.join(missing[:3])}"
                        + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    if not paths:
        raise UserError(f"{root}/spec.json lists no files for this split")
    return paths


def _tf_dtype(tf, dtype: str):
    return {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[dtype]


def _pad_value(dtype: str):
    return {"string": "", "int64": 0, "float32": 0.0}[dtype]


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


def parse_batch_fn(dataset_spec: DatasetSpec, names=None):
    """A function mapping a batch of serialized records of ``dataset_spec`` to dense tensors.

    Args:
        names: restrict to these features (labels/keys included only if named); None = all.
    Returns:
        ``parse(serialized: [B] string) -> {name: tensor}``: scalars ``[B]``, varlen context
        features ``[B, max_length]`` (first values kept, right-padded), feature lists
        ``[B, max_length]`` (last events kept, left-padded, most recent last).
    """
    tf = import_tensorflow()
    wanted = [f for f in dataset_spec.features.values() if names is None or f.name in names]

    def description(f: FeatureSpec):
        dtype = _tf_dtype(tf, f.dtype)
        if f.is_varlen or f.is_sequence:
            return tf.io.RaggedFeature(dtype=dtype, row_splits_dtype=tf.int64)
        return tf.io.FixedLenFeature([], dtype, default_value=_pad_value(f.dtype))

    context = {f.name: description(f) for f in wanted if not f.is_sequence}
    sequence = {f.name: description(f) for f in wanted if f.is_sequence}
    by_name = {f.name: f for f in wanted}

    def parse(serialized):
        if dataset_spec.proto == SEQUENCE_PROTO:
            parsed, lists, _ = tf.io.parse_sequence_example(
                serialized, context_features=context, sequence_features=sequence)
        else:
            parsed, lists = tf.io.parse_example(serialized, context), {}
        out = {}
        for name, value in parsed.items():
            f = by_name[name]
            if f.is_varlen:
                value = value[:, :f.max_length].to_tensor(default_value=_pad_value(f.dtype),
                                                          shape=[None, f.max_length])
            out[name] = value
        for name, value in lists.items():
            f = by_name[name]
            if value.ragged_rank == 2:  # [B, (T), (1)]: one value per event
                value = value.merge_dims(1, 2)
            out[name] = left_pad(tf, value, f.max_length, _pad_value(f.dtype))
        return out

    return parse


# Parsed records per (data dir, dataset, split, names) of the ``sequential_records`` order with
# ``cache``: shared by every run of a process (``adpush compare`` trains 15+ models on the same
# splits).
_PARSED: dict = {}


def dataset_batches(ds: DatasetSpec, split: str, batch_size: int, *,
                    order: str = "interleave_blocks", shuffle: bool = False, seed: int = 0,
                    repeat: bool = False, drop_remainder: bool = False, names=None,
                    shuffle_buffer: int | None = None, shuffle_block: int = 16,
                    num_parallel_reads: int = 4, cache: bool = False,
                    parse_batch_size: int = 1024):
    """A ``tf.data.Dataset`` of parsed batches of one split: ``{feature name: tensor}``.

    Two orders, each the one a family's figures were reached with:

    ``interleave_blocks`` (the selling-point family): files are read in parallel (deterministic
    interleave of ``num_parallel_reads``); with ``shuffle`` the file order is shuffled and the
    records are shuffled in blocks of ``shuffle_block`` consecutive records of one file over a
    window of ``shuffle_buffer`` (10,000) records, *before* parsing; then batched and parsed with
    one call per batch. A batch of 256 draws 16 blocks from random places of the window.
    Shuffling blocks instead of single records cuts the per-record tf.data work of interleave +
    shuffle from 2.1–3.5 to 0.8–1.0 ms per batch of 256 (4 gzip files of ad_click records), CPU
    that the training step gets back on 2 cores (bench/train_bench.py). AMTDL alternating, one
    epoch on a quarter of the default world: validation AUC 0.6580 per record, 0.6591 in
    blocks. build-data writes impression datasets in impression-id (time) order, so the records
    of a block are mostly different users.

    ``sequential_records`` (the cascade family): the files are read one after the other in
    spec order, parsed ``parse_batch_size`` records at a time (parsing has a large per-call
    cost) and split back into records; with ``cache`` the parsed records are kept in memory and
    shared by later calls in the process, so later epochs and runs skip decompression and
    parsing; with ``shuffle`` single parsed records are shuffled over ``shuffle_buffer``
    (50,000) records, then batched.

    Args:
        names: restrict to these features (labels/keys included only if named); None = all.
    """
    tf = import_tensorflow()
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {ORDERS}")
    files = ds.split_files(split)
    if order == "interleave_blocks":
        if cache:
            raise ValueError("cache belongs to the sequential_records order")
        records = _interleaved_blocks(tf, ds, files, shuffle=shuffle, seed=seed,
                                      shuffle_buffer=shuffle_buffer or 10_000,
                                      shuffle_block=shuffle_block,
                                      num_parallel_reads=num_parallel_reads)
        if repeat:
            records = records.repeat()
        batches = records.batch(batch_size, drop_remainder=drop_remainder)
        batches = batches.map(parse_batch_fn(ds, names), num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True)
        return batches.prefetch(tf.data.AUTOTUNE)

    key = (ds.root, ds.name, split, None if names is None else frozenset(names))
    parsed = _PARSED.get(key) if cache else None
    if parsed is None:
        parsed = tf.data.TFRecordDataset(files, compression_type=ds.compression)
        parsed = parsed.batch(max(batch_size, parse_batch_size)).map(
            parse_batch_fn(ds, names), num_parallel_calls=1).unbatch()
        if cache:
            parsed = _PARSED[key] = parsed.cache()
    if shuffle:
        parsed = parsed.shuffle(shuffle_buffer or 50_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        parsed = parsed.repeat()
    return parsed.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)


def _interleaved_blocks(tf, ds: DatasetSpec, files, *, shuffle, seed, shuffle_buffer,
                        shuffle_block, num_parallel_reads):
    """Serialized records of ``files`` in the ``interleave_blocks`` order."""
    block = max(1, shuffle_block) if shuffle else 1
    records = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        records = records.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def read(f):
        one = tf.data.TFRecordDataset(f, compression_type=ds.compression)
        return one.batch(block) if block > 1 else one

    records = records.interleave(read, cycle_length=max(1, min(num_parallel_reads, len(files))),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle:
        records = records.shuffle(max(1, shuffle_buffer // block), seed=seed,
                                  reshuffle_each_iteration=True)
    return records.unbatch() if block > 1 else records


def make_dataset(spec: DataSpec, dataset: str, split: str, batch_size: int, **options):
    """:func:`dataset_batches` of ``spec``'s dataset ``dataset`` (default order
    ``interleave_blocks``, the selling-point family's)."""
    return dataset_batches(spec.dataset(dataset), split, batch_size, **options)


def float_statistics(ds: DatasetSpec, rows: int = 8192) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every float model feature on the first ``rows`` records of
    the *train* split in file order (real events only for feature lists: padding is excluded).

    The cascade models standardise float inputs with these (cascade/features.SharedEmbeddings): a
    raw ``hist_time_gap`` (log1p seconds, about 5–14 and always positive) otherwise dominates
    every freshly initialised projection, and the first steps that pull all outputs down to the
    base rate pull them down most for long histories — a ranking by history length, below chance
    wherever longer histories click more.
    """
    import numpy as np  # noqa: PLC0415

    floats = [f for f in ds.model_features() if f.dtype == "float32"]
    if not floats:
        return {}
    batch = next(iter(dataset_batches(ds, "train", rows, order="sequential_records")))
    mask_name = next((f.name for f in ds.sequence_features if f.dtype == "string"), None)
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


class InMemorySplit:
    """One split's parsed features held in memory as tensors, served as shuffled batches.

    The split is read and parsed once; each pass over it is then one uniform
    permutation of the rows (``tf.random.experimental.stateless_shuffle``, seeded by ``seed``
    and the pass number) cut into ``batch_size`` rows, each batch one ``tf.gather`` a feature.
    Against :func:`make_dataset`'s files, which gunzip and parse every record again each epoch,
    an epoch of the demo's ad-click split (460k rows, 12 features) takes 0.8 s instead of 2.4 s
    of CPU, and a pass is a true permutation instead of a block shuffle. For splits that fit in
    memory (the strings of a row: ~40 here); the files stay the path for the rest.
    """

    def __init__(self, spec: DataSpec, dataset: str, split: str, names):
        tf = import_tensorflow()
        parts: dict[str, list] = {name: [] for name in sorted(names)}
        for batch in make_dataset(spec, dataset, split, 8192, names=set(names)):
            for name, kept in parts.items():
                kept.append(batch[name])  # tensors: no round trip through numpy objects
        self.rows = sum(int(t.shape[0]) for t in next(iter(parts.values()), []))
        if self.rows == 0:
            raise UserError(f"{dataset}/{split} has no rows to hold in memory "
                            f"(files: {spec.dataset(dataset).split_files(split)})")
        self.tensors = {name: tf.concat(kept, axis=0) for name, kept in parts.items()}

    def dataset(self, batch_size: int, seed: int, passes: int | None = None):
        """Batches of ``batch_size`` rows (the last partial batch of a pass dropped), pass after
        pass (``None`` = without end); the same ``seed`` gives the same batches."""
        tf = import_tensorflow()
        per_pass = self.rows // batch_size
        if per_pass == 0:
            raise UserError(f"batch size {batch_size} exceeds the {self.rows} rows held in memory")
        rows, tensors = self.rows, self.tensors

        def one_pass(number):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(rows, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), number]))
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(order[:per_pass * batch_size], [per_pass, batch_size]))

        numbers = (tf.data.Dataset.range(passes) if passes is not None
                   else tf.data.Dataset.counter())
        ds = numbers.flat_map(one_pass)
        ds = ds.map(lambda index: {name: tf.gather(t, index) for name, t in tensors.items()},
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)


def read_columns(spec: DataSpec, dataset: str, split: str, names, batch_size: int = 4096) -> dict:
    """Read whole columns of one split into numpy arrays (for evaluation and segments)."""
    import numpy as np  # noqa: PLC0415

    columns: dict[str, list] = {n: [] for n in names}
    for batch in make_dataset(spec, dataset, split, batch_size, names=set(names)):
        for n in names:
            columns[n].append(batch[n].numpy())
    return {n: (np.concatenate(v) if v else np.array([])) for n, v in columns.items()}
