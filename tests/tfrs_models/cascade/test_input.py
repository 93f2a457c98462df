"""SequenceExample parsing: spec-driven, most recent last, left padding, truncation."""
from __future__ import annotations

import numpy as np


def test_left_pad_keeps_most_recent_last():
    import tfrs_models.cascade.input as cin
    import tensorflow as tf

    ragged = tf.ragged.constant([["a", "b"], ["a", "b", "c", "d", "e"], []])
    out = cin.left_pad(tf, ragged, 4, "").numpy().astype(str)
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
