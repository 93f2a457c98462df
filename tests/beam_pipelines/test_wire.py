"""wire.py / sequence_examples.py bytes == protobuf's deterministic serialization."""
import math

import numpy as np
import tensorflow as tf

from beam_pipelines import wire
from beam_pipelines.sequence_examples import build_user_sequences, reference_sequence_example
from beam_pipelines.sources.behaviour import BUY, CART, PV


def test_example_matches_protobuf():
    ex = tf.train.Example()
    ex.features.feature["b"].bytes_list.value.append(b"x" * 200)
    ex.features.feature["a"].int64_list.value.extend([0, 5, 2**40])
    ex.features.feature["c"].float_list.value.append(0.25)
    ex.features.feature["empty"].bytes_list.SetInParent()
    ours = wire.example({
        "b": wire.bytes_feature([b"x" * 200]),
        "a": wire.int64_feature([0, 5, 2**40]),
        "c": wire.float_feature([0.25]),
        "empty": wire.bytes_feature([]),
    })
    assert ours == ex.SerializeToString(deterministic=True)


def test_user_sequences_match_protobuf_and_labels():
    # user 3: pv item 10 at t=100, pv 11 at 100 (same second), cart 10 at 150, buy 10 at 160,
    # pv 10 again at 170 (cart/buy are before it -> not clicked), buy 11 at 200 (no cart: a
    # "buy now" is a click-through and a conversion of the pv of 11).
    start = 0
    events = [(100, 10, 1, PV), (100, 11, 2, PV), (150, 10, 1, CART), (160, 10, 1, BUY),
              (170, 10, 1, PV), (200, 11, 2, BUY)]
    records, counts = build_user_sequences(3, events, start, max_history=2)
    assert [(r[1], r[3], r[4]) for r in records] == [(100, 1, 1), (100, 1, 1), (170, 0, 0)]
    # the third impression sees the last 2 events strictly before t=170
    expected = reference_sequence_example(
        {"user_id": b"3", "item_id": b"10", "category": b"1", "click": 0, "conversion": 0,
         "ts": 170, "day": 0},
        [(150, 10, 1, CART), (160, 10, 1, BUY)], 170)
    assert records[2][5] == expected.SerializeToString(deterministic=True)
    parsed = tf.train.SequenceExample.FromString(records[2][5])
    gaps = [f.float_list.value[0] for f in parsed.feature_lists.feature_list["hist_time_gap"].feature]
    np.testing.assert_allclose(gaps, [math.log1p(20), math.log1p(10)], rtol=1e-6)
    # the first impression has no event strictly before t=100 (the other pv is at t=100)
    first = reference_sequence_example(
        {"user_id": b"3", "item_id": b"10", "category": b"1", "click": 1, "conversion": 1,
         "ts": 100, "day": 0}, [], 100)
    assert records[0][5] == first.SerializeToString(deterministic=True)
    assert counts[0]["behavior"] == {"pv": 3, "cart": 1, "buy": 2}
    assert counts[0]["item_id"] == {"10": 4, "11": 2}


def test_user_sequences_with_titles_match_protobuf():
    """World source: the candidate's catalogue title tokens in the context (``title_tokens``),
    cut to ``max_title_tokens``; an item without a title has an empty (but present) list; the
    ``title_token`` counts take every event's title, as ``item_id`` counts its item."""
    events = [(100, 10, 1, PV), (150, 10, 1, CART), (170, 11, 2, PV)]
    titles = {10: ("red", "shoe", "fast"), 11: ()}
    records, counts = build_user_sequences(3, events, 0, max_history=2, titles=titles, max_title_tokens=2)
    expected = reference_sequence_example(
        {"user_id": b"3", "item_id": b"10", "category": b"1", "click": 1, "conversion": 0,
         "ts": 100, "day": 0, "title_tokens": [b"red", b"shoe"]}, [], 100)
    assert records[0][5] == expected.SerializeToString(deterministic=True)
    expected = reference_sequence_example(
        {"user_id": b"3", "item_id": b"11", "category": b"2", "click": 0, "conversion": 0,
         "ts": 170, "day": 0, "title_tokens": []}, [(100, 10, 1, PV), (150, 10, 1, CART)], 170)
    assert records[1][5] == expected.SerializeToString(deterministic=True)
    assert counts[0]["title_token"] == {"red": 2, "shoe": 2}
    # without a catalogue (Taobao) the records carry no title and there are no title counts
    plain, plain_counts = build_user_sequences(3, events, 0, max_history=2)
    assert "title_tokens" not in tf.train.SequenceExample.FromString(plain[0][5]).context.feature
    assert "title_token" not in plain_counts[0]
