"""Helpers for the build-data tests: read outputs back with tf.data using only spec.json."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

TAOBAO_TAIL = "taobao_user_behavior/UserBehavior_usersorted_tail_10000.csv"


def _parse_fn(dataset_spec):
    import tensorflow as tf

    dtypes = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}
    if dataset_spec["proto"] == "tf.train.Example":
        desc = {
            name: (tf.io.FixedLenFeature([], dtypes[f["dtype"]]) if f["kind"] == "scalar"
                   else tf.io.VarLenFeature(dtypes[f["dtype"]]))
            for name, f in dataset_spec["features"].items()
        }
        def parse_example(record):
            parsed = tf.io.parse_single_example(record, desc)
            return {k: (v.values if isinstance(v, tf.sparse.SparseTensor) else v) for k, v in parsed.items()}

        return parse_example
    context = {name: tf.io.FixedLenFeature([], dtypes[f["dtype"]])
               for name, f in dataset_spec["features"].items() if f["part"] == "context"}
    sequence = {name: tf.io.FixedLenSequenceFeature([], dtypes[f["dtype"]], allow_missing=True)
                for name, f in dataset_spec["features"].items() if f["part"] == "sequence"}

    def parse(record):
        ctx, seq = tf.io.parse_single_sequence_example(record, context, sequence)
        return {**ctx, **seq}

    return parse


def read_split(out: Path, dataset: str, split: str) -> list[dict]:
    """All records of one split as {feature: numpy value}, parsed through spec.json only."""
    import tensorflow as tf

    spec = json.loads((Path(out) / "spec.json").read_text())
    ds_spec = spec["datasets"][dataset]
    files = sorted(tf.io.gfile.glob(str(Path(out) / ds_spec["files"][split])))
    ds = tf.data.TFRecordDataset(files, compression_type=ds_spec["compression"]).map(_parse_fn(ds_spec))
    rows = []
    for example in ds.as_numpy_iterator():
        rows.append(example)
    return rows


def count_records(out: Path, dataset: str, split: str) -> int:
    """Records of one split that parse with the spec's feature description (batched)."""
    import tensorflow as tf

    spec = json.loads((Path(out) / "spec.json").read_text())
    ds_spec = spec["datasets"][dataset]
    files = sorted(tf.io.gfile.glob(str(Path(out) / ds_spec["files"][split])))
    ds = tf.data.TFRecordDataset(files, compression_type=ds_spec["compression"]).map(_parse_fn(ds_spec))
    return int(ds.reduce(0, lambda n, _: n + 1))


def dead_letters(out: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(out) / "dead_letter").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def tree_digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(out).rglob("*")) if p.is_file()}


