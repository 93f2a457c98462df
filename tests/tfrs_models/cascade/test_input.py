"""SequenceExample parsing: spec-driven, most recent last, left padding, truncation."""
from __future__ import annotations

import numpy as np


def test_left_pad_keeps_most_recent_last():
    from tfrs_models.input import left_pad
    import tensorflow as tf

    ragged = tf.ragged.constant([["a", "b"], ["a", "b", "c", "d", "e"], []])
    out = left_pad(tf, ragged, 4, "").numpy().astype(str)
    assert out.tolist() == [["", "", "a", "b"], ["b", "c", "d", "e"], ["", "", "", ""]]


def test_parse_batch_shapes_follow_spec(cascade_spec, cascade_batch):
    assert cascade_spec.proto == "tf.train.SequenceExample"
    assert cascade_spec.sequence_length == 12
    assert [f.name for f in cascade_spec.sequence_features] == [
        "hist_item_id", "hist_category", "hist_behavior", "hist_time_gap"]
    assert cascade_batch["hist_item_id"].shape == (32, 12)
    assert cascade_batch["hist_time_gap"].dtype.name == "float32"
    assert cascade_batch["click"].shape == (32,)
    items = cascade_batch["hist_item_id"].numpy()
    gaps = cascade_batch["hist_time_gap"].numpy()
    # Padding is on the left: once a row has a real event, every later position is real.
    real = items != b""
    assert np.all(np.diff(real.astype(int), axis=1) >= 0)
    np.testing.assert_array_equal(gaps[~real], 0.0)
    # Conversion implies click, as the contract says.
    conv, click = cascade_batch["conversion"].numpy(), cascade_batch["click"].numpy()
    assert np.all(click[conv == 1] == 1)


# Fingerprints of what the cascade pipeline yielded at 2edcbea (tests/tfrs_models/batch_digest.py)
# under the global seed 0 (a seeded shuffle's order depends on it, as in training):
# the data layer may be rewritten, but the batches a cascade model trains and is scored on may not
# move, or every cascade figure would.
CASCADE_BATCHES = {
    ("sequence", "train shuffled cached"): "d210a2e56741128c07c809f59e8c12048d9dc64fb760466dd99c3bd1897a39dc",
    ("sequence", "valid"): "4b8f531c2da221451eef8b17870233d294816f0ce70ebabe49310a6ca8078854",
    ("sequence", "train repeated"): "f7f91f00f9d4eae0377e7ab80dbaba64c1161bbf82d138a5aaefdadcfbdf562e",
    ("cascade_flat", "train shuffled cached"): "45ff88dae9a3af8e51d8ebed90028761809c31ca5132fe99c59f45866b878d7f",
    ("cascade_flat", "valid"): "e42237bf685f7a07330020360cea910e010a7fd1606081f7d034d080c4a50659",
    ("cascade_flat", "train repeated"): "5be29d7bd4d3df32119d45776195611708f06c5c8a400a15882dc6f70f3654f8",
}


def test_cascade_pipeline_yields_the_pinned_batches(cascade_data, tmp_path):
    import tensorflow as tf

    from batch_digest import batches_digest
    from cascade_fixture_data import write_flat_dataset
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.input import dataset_batches

    tf.random.set_seed(0)
    for spec in (load_dataset(cascade_data), load_dataset(write_flat_dataset(tmp_path / "flat", rows=96))):
        def batches(split, size, **options):
            return dataset_batches(spec, split, size, order="sequential_records", **options)

        got = {
            "train shuffled cached": batches("train", 32, shuffle=True, seed=3, cache=True),
            "valid": batches("valid", 50),
            "train repeated": batches("train", 32, shuffle=True, seed=1, repeat=True).take(9),
        }
        for what, dataset in got.items():
            assert batches_digest(dataset) == CASCADE_BATCHES[spec.name, what], (spec.name, what)
