"""Every exported model goes through the same REST row / REST columnar / gRPC round trip."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

import toy_models
from harness import check_serving_roundtrip


def _expected(fn, inputs):
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_keyword_ctr_all_signatures_roundtrip(model_base):
    sigs = model_base["keyword_ctr_signatures"]
    raw = toy_models.keyword_ctr_requests(4, seed=31)
    check_serving_roundtrip(model_base["keyword_ctr_path"], "serving_default", raw,
                            _expected(sigs["serving_default"], raw))
    sel = toy_models.select_request(3, seed=32)
    check_serving_roundtrip(model_base["keyword_ctr_path"], "select_selling_points", sel,
                            _expected(sigs["select_selling_points"], sel))


def test_half_plus_two_roundtrip(model_base):
    x = {"x": np.array([[0.0], [1.5], [-3.0]], np.float32)}
    check_serving_roundtrip(model_base["base"] / "half_plus_two" / "123", "serving_default", x,
                            {"y": 0.5 * x["x"] + 2})
