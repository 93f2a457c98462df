"""serving.verify: saved_model_cli, in a process that never imports adpush, finds py-func ops and
gives the in-process numbers."""
from __future__ import annotations

import numpy as np
import pytest
import toy_models

from serving.errors import ExportError
from serving.verify import denylisted_ops, run_signature, scan_ops, verify_saved_model


def test_saved_model_cli_scan_and_run_match_in_process(model_base):
    """In a subprocess that never imports adpush: no py-func ops, and the same numbers."""
    import tensorflow as tf

    path = model_base["keyword_ctr_path"]
    assert scan_ops(path) == set()
    sigs = model_base["keyword_ctr_signatures"]
    inputs = toy_models.select_request(2, seed=1)
    expected = sigs["select_selling_points"](**{k: tf.constant(v) for k, v in inputs.items()})
    got = run_signature(path, "select_selling_points", inputs)
    np.testing.assert_allclose(got["scores"], expected["scores"].numpy(), rtol=1e-6)
    assert got["top_k_selling_points"].tolist() == expected["top_k_selling_points"].numpy().tolist()


@pytest.mark.slow
def test_saved_model_cli_run_serving_default_matches(model_base):
    import tensorflow as tf

    path = model_base["keyword_ctr_path"]
    inputs = toy_models.keyword_ctr_requests(4, seed=2)
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in inputs.items()})["p_click"].numpy()
    got = run_signature(path, "serving_default", inputs)
    np.testing.assert_allclose(got["p_click"], expected, rtol=1e-6)


def test_scan_finds_py_func_ops(tmp_path):
    import tensorflow as tf

    class PyFuncModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def f(self, x):
            return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    m = PyFuncModel()
    path = toy_models.export_module(m, {"serving_default": m.f}, tmp_path, "bad", version=1)
    assert denylisted_ops(path) == {"EagerPyFunc"}
    with pytest.raises(ExportError, match="EagerPyFunc"):
        verify_saved_model(path)
