"""``adpush export`` (export_run over RUN/export_info.json) and the ``serve`` registration."""
from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from serving import export as ex
import toy_models


def test_adpush_export_reexports_a_run_atomically_with_warmup(tmp_path, model_base):
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
    logs = ex.read_warmup_requests(base / "kw" / "1")
    assert len(logs) == 1 and logs[0].predict_log.request.model_spec.signature_name == "serving_default"
    loaded = tf.saved_model.load(str(base / "kw" / "2"))
    assert set(loaded.signatures) == {"serving_default", "regress", "classify", "select_selling_points"}
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_export_run_without_export_info_is_a_user_error(tmp_path, capsys):
    from adpush.cli import main

    assert main(["export", "--run-dir", str(tmp_path), "--model-base-path", str(tmp_path / "b"),
                 "--model-name", "m"]) == 2
    assert "export_info.json" in capsys.readouterr().err
