"""``adpush export``: export_run publishes the SavedModel RUN/export_info.json names by copying it
(never loaded and saved again), atomically, with a warm-up file typed from its SignatureDefs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from serving.errors import ExportError
from serving.export import export_run
from serving.warmup import WARMUP_FILE, read_warmup_requests
import toy_models


def test_adpush_export_publishes_a_runs_saved_model_atomically_with_warmup(tmp_path, model_base):
    from adpush.cli import main

    run = tmp_path / "run"
    run.mkdir()
    # A "training run": a SavedModel with the contract's signatures, plus export_info.json.
    toy_path = model_base["keyword_ctr_path"]
    os.symlink(toy_path, run / "saved_model")
    raw = toy_models.keyword_ctr_requests(2, seed=1)
    (run / "export_info.json").write_text(json.dumps({
        "saved_model": "saved_model", "family": "toy/keyword_ctr",
        "warmup_inputs": {"serving_default": {k: v.tolist() for k, v in raw.items()}}}))
    base = tmp_path / "base"
    assert main(["export", "--run-dir", str(run), "--model-base-path", str(base), "--model-name", "kw"]) == 0
    assert main(["export", "--run-dir", str(run), "--model-base-path", str(base), "--model-name", "kw"]) == 0
    assert sorted(os.listdir(base / "kw")) == ["1", "2"]
    assert main(["export", "--run-dir", str(run), "--model-base-path", str(base), "--model-name", "kw",
                 "--version", "1"]) == 2   # never overwritten: a user error
    logs = read_warmup_requests(base / "kw" / "1")
    assert len(logs) == 1 and logs[0].predict_log.request.model_spec.signature_name == "serving_default"
    loaded = tf.saved_model.load(str(base / "kw" / "2"))
    assert set(loaded.signatures) == {"serving_default", "regress", "classify", "select_selling_points"}
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_published_version_is_the_runs_saved_model_byte_for_byte(tmp_path, model_base):
    run = tmp_path / "run"
    saved = run / "export" / "saved_model"
    module, signatures = toy_models.half_plus_two_module(b=4.0)
    tf.saved_model.save(module, str(saved), signatures=signatures)
    (run / "export_info.json").write_text(json.dumps({
        "saved_model": "export/saved_model",
        "warmup_inputs": {"serving_default": {"x": [[1.0]]}, "regress_x_to_y": {"inputs": [""]}}}))
    published = export_run(run, tmp_path / "base", "hpt")
    source, copy = _files(saved), _files(published)
    assert "saved_model.pb" in source and any(name.startswith("variables/") for name in source)
    assert {name: copy[name] for name in source} == source  # saved_model.pb, variables/: identical
    assert set(copy) - set(source) == {WARMUP_FILE}
    # The warm-up inputs are typed from the SignatureDefs: x is float32 [1, 1], inputs a string.
    logs = read_warmup_requests(published)
    x = logs[0].predict_log.request.inputs["x"]
    assert x.dtype == tf.float32.as_datatype_enum and list(x.float_val) == [1.0]
    assert logs[1].predict_log.request.inputs["inputs"].dtype == tf.string.as_datatype_enum


def test_export_run_refuses_before_writing_anything(tmp_path):
    class PyFunc(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def f(self, x):
            return {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)}

    run = tmp_path / "run"
    module = PyFunc()
    tf.saved_model.save(module, str(run / "export" / "saved_model"), signatures={"serving_default": module.f})
    (run / "export_info.json").write_text(json.dumps({"saved_model": "export/saved_model"}))
    with pytest.raises(ExportError, match="EagerPyFunc"):
        export_run(run, tmp_path / "base", "bad")
    (run / "export_info.json").write_text(json.dumps({"saved_model": "export/missing"}))
    with pytest.raises(ExportError, match="has no saved_model.pb"):
        export_run(run, tmp_path / "base", "bad")
    assert not (tmp_path / "base" / "bad").exists() or os.listdir(tmp_path / "base" / "bad") == []


def test_export_run_without_export_info_is_a_user_error(tmp_path, capsys):
    from adpush.cli import main

    assert main(["export", "--run-dir", str(tmp_path), "--model-base-path", str(tmp_path / "b"),
                 "--model-name", "m"]) == 2
    assert "export_info.json" in capsys.readouterr().err
