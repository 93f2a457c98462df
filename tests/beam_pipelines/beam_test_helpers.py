"""Helpers for the build-data tests: read outputs back with tf.data using only spec.json."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

TAOBAO_TAIL = "taobao_user_behavior/UserBehavior_usersorted_tail_10000.csv"


def _dataset(out: Path, dataset: str, split: str, batch_size: int = 1024):
    """Batched tf.data pipeline over one split, parsed with a description built from spec.json:
    scalars FixedLen, varlen features Ragged (Example) or padded feature lists + lengths."""
    import tensorflow as tf

    spec = json.loads((Path(out) / "spec.json").read_text())
    ds_spec = spec["datasets"][dataset]
    dtypes = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}
    files = [str(Path(out) / f) for f in ds_spec["files"][split]]  # the exact files, never a glob
    ds = tf.data.TFRecordDataset(files, compression_type=ds_spec["compression"]).batch(batch_size)
    features = ds_spec["features"]
    if ds_spec["proto"] == "tf.train.Example":
        desc = {name: (tf.io.FixedLenFeature([], dtypes[f["dtype"]]) if f["kind"] == "scalar"
                       else tf.io.RaggedFeature(dtypes[f["dtype"]]))
                for name, f in features.items()}
        return ds.map(lambda r: tf.io.parse_example(r, desc)), features
    context = {name: (tf.io.FixedLenFeature([], dtypes[f["dtype"]]) if f["kind"] == "scalar"
                      else tf.io.RaggedFeature(dtypes[f["dtype"]]))  # a context token bag (title_tokens)
               for name, f in features.items() if f["part"] == "context"}
    sequence = {name: tf.io.FixedLenSequenceFeature([], dtypes[f["dtype"]], allow_missing=True)
                for name, f in features.items() if f["part"] == "sequence"}

    def parse(records):
        ctx, seq, lengths = tf.io.parse_sequence_example(records, context_features=context,
                                                          sequence_features=sequence)
        return {**ctx, **seq, **{f"{k}__length": v for k, v in lengths.items()}}

    return ds.map(parse), features


def read_split(out: Path, dataset: str, split: str) -> list[dict]:
    """All records of one split as {feature: numpy value} (varlen as 1-D arrays)."""
    ds, features = _dataset(out, dataset, split)
    rows = []
    for batch in ds.as_numpy_iterator():
        n = len(next(iter(v for k, v in batch.items() if features.get(k, {}).get("kind") == "scalar")))
        for i in range(n):
            row = {}
            for name, f in features.items():
                value = batch[name]
                if f["kind"] == "scalar":
                    row[name] = value[i]
                elif f"{name}__length" in batch:
                    row[name] = value[i][: batch[f"{name}__length"][i]]
                else:
                    row[name] = value[i]
            rows.append(row)
    return rows


def count_records(out: Path, dataset: str, split: str) -> int:
    """Records of one split that parse with the spec's feature description."""
    ds, features = _dataset(out, dataset, split)
    key = next(k for k, f in features.items() if f["kind"] == "scalar")
    return sum(len(batch[key]) for batch in ds.as_numpy_iterator())


def dead_letters(out: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(out) / "dead_letter").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def tree_digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(out).rglob("*")) if p.is_file()}
