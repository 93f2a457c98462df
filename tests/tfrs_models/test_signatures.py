"""tfrs_models.signatures: the serving signatures every model family builds from a scoring
function, checked against hand-computed scores."""
from __future__ import annotations

import numpy as np

from tfrs_models import signatures


def test_select_selling_points_ranks_candidates_by_the_scoring_function():
    import tensorflow as tf

    # score = length of the keyword + user bonus: hand-checkable ordering.
    def score(f):
        return tf.cast(tf.strings.length(f["selling_point"]), tf.float32) + tf.cast(f["bonus"], tf.float32)

    sig = signatures.make_select_selling_points_signature(score, {"bonus": tf.int64}, k=2)
    out = sig(bonus=tf.constant([0, 10], tf.int64),
              candidate_selling_points=tf.constant([["ab", "abcd", "a"], ["xyz", "", "x"]]))
    np.testing.assert_allclose(out["scores"].numpy(), [[2, 4, 1], [13, -np.inf, 11]])
    assert out["top_k_selling_points"].numpy().tolist() == [[b"abcd", b"ab"], [b"xyz", b"x"]]
    np.testing.assert_allclose(out["top_k_scores"].numpy(), [[4, 2], [13, 11]])


def test_make_serving_signatures_with_sequence_features():
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    spec = {"history": tf.TensorSpec([None, 3], tf.int64), "kw": tf.TensorSpec([None], tf.string)}

    def score(f):  # hand-checkable: sum of the history + keyword length
        return tf.cast(tf.reduce_sum(f["history"], axis=1), tf.float32) + tf.cast(tf.strings.length(f["kw"]),
                                                                                   tf.float32)

    sigs = signatures.make_serving_signatures(score, spec, output_name="p", candidate_feature="kw", k=1)
    assert set(sigs) == {"serving_default", "regress", "classify", "select_selling_points"}
    out = sigs["serving_default"](history=tf.constant([[1, 2, 3]], tf.int64), kw=tf.constant(["abcd"]))
    assert out["p"].numpy().tolist() == [10.0]
    e = example_pb2.Example()
    e.features.feature["history"].int64_list.value.extend([0, 0, 5])
    e.features.feature["kw"].bytes_list.value.append(b"ab")
    assert sigs["regress"](inputs=tf.constant([e.SerializeToString()]))["outputs"].numpy().tolist() == [7.0]
    sel = sigs["select_selling_points"](history=tf.constant([[1, 1, 1]], tf.int64),
                                        candidate_selling_points=tf.constant([["a", "abc", "ab"]]))
    assert sel["top_k_selling_points"].numpy().tolist() == [[b"abc"]]
    assert sel["scores"].numpy().tolist() == [[4.0, 6.0, 5.0]]
