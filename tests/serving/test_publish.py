"""serving.publish: versions are integers, published atomically and never overwritten; what a
published version holds (assets, SignatureDefs, the tf.Example signatures' numbers)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import toy_models

from serving.errors import ExportError
from serving.publish import _rename_noreplace, existing_versions


def test_versions_are_integers_and_never_overwritten(tmp_path):
    first = toy_models.export_half_plus_two(tmp_path, "m", warmup=False)
    second = toy_models.export_half_plus_two(tmp_path, "m", warmup=False)
    assert (first.name, second.name) == ("1", "2")
    mtime = os.path.getmtime(first / "saved_model.pb")
    with pytest.raises(ExportError, match="already exists"):
        toy_models.export_half_plus_two(tmp_path, "m", version=1, warmup=False)
    assert os.path.getmtime(first / "saved_model.pb") == mtime
    # Nothing but the two finished versions (no temp dirs) is left in the model directory.
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]


def test_zero_padded_version_counts_as_existing(tmp_path):
    (tmp_path / "m" / "007").mkdir(parents=True)
    assert existing_versions(tmp_path / "m") == [7]
    with pytest.raises(ExportError):
        toy_models.export_half_plus_two(tmp_path, "m", version=7, warmup=False)


def test_failed_export_leaves_nothing_behind(tmp_path):
    module, signatures = toy_models.half_plus_two_module()

    def boom(_tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        toy_models.export_module(module, signatures, tmp_path, "m", version=5, before_publish=boom)
    assert os.listdir(tmp_path / "m") == []
    with pytest.raises(ExportError):
        toy_models.export_module(module, signatures, tmp_path, "m", version=6,
                                 warmup_requests=[object()])
    assert os.listdir(tmp_path / "m") == []


def test_rename_noreplace_refuses_an_existing_empty_directory(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    with pytest.raises(FileExistsError):
        _rename_noreplace(src, dst)
    assert src.exists()


def test_keyword_ctr_export_layout_and_signatures(model_base):
    path = model_base["keyword_ctr_path"]
    assert sorted(os.listdir(path / "assets")) == ["ad_id.vocab", "query.vocab", "selling_point.vocab",
                                                  "user_id.vocab"]
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    sigs = sm.meta_graphs[0].signature_def
    assert set(sigs["serving_default"].inputs) == {"user_id", "query", "ad_id", "selling_point", "hour"}
    assert set(sigs["serving_default"].outputs) == {"p_click"}
    assert set(sigs["regress"].inputs) == {"inputs"} and set(sigs["regress"].outputs) == {"outputs"}
    assert set(sigs["classify"].outputs) == {"classes", "scores"}
    assert set(sigs["select_selling_points"].outputs) == {"scores", "top_k_selling_points", "top_k_scores"}
    # No training knobs (dropout rate, phase) reach the serving inputs.
    for sig in sigs.values():
        assert not {k for k in sig.inputs if "dropout" in k or "train" in k or "phase" in k}


def test_example_signatures_match_raw_predictions(model_base):
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    sigs = model_base["keyword_ctr_signatures"]
    raw = toy_models.keyword_ctr_requests(3, seed=5)
    expected = sigs["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    examples = []
    for i in range(3):
        e = example_pb2.Example()
        for k, v in raw.items():
            if k == "hour":
                e.features.feature[k].int64_list.value.append(int(v[i]))
            else:
                e.features.feature[k].bytes_list.value.append(v[i].encode())
        examples.append(e.SerializeToString())
    reg = sigs["regress"](inputs=tf.constant(examples))["outputs"].numpy()
    cls = sigs["classify"](inputs=tf.constant(examples))
    np.testing.assert_allclose(reg, expected, rtol=1e-6)
    np.testing.assert_allclose(cls["scores"].numpy()[:, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(cls["scores"].numpy().sum(axis=1), 1.0, rtol=1e-6)
    assert cls["classes"].numpy()[0].tolist() == [b"0", b"1"]
