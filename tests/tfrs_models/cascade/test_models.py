"""Every cascade model: named outputs, ESMM's product, and the shared save → reload harness."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tfrs_models.cascade  # noqa: F401  (selects Keras 2 before TensorFlow)
from tfrs_models.cascade.config import MODELS, ModelConfig
from tfrs_models.cascade.encoders.registry import ENCODERS, EncoderConfig


def _fitted(layout, batch, model_name, encoder="tcn", steps=2, seed=0):
    import tensorflow as tf

    from tfrs_models.cascade.models.registry import build_model

    tf.keras.utils.set_random_seed(seed)
    config = ModelConfig(name=model_name, tower_units=(16, 8), conv_filters=(8, 4),
                         attention_units=8, encoder=EncoderConfig(name=encoder, units=8))
    model = build_model(layout, config)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(steps), verbose=0)
    return model


def test_esmm_conversion_is_product_of_click_and_cvr(cascade_layout, cascade_batch):
    model = _fitted(cascade_layout, cascade_batch, "esmm", steps=1)
    out = model(cascade_batch)
    np.testing.assert_allclose(out["p_conversion"].numpy(),
                               out["p_click"].numpy() * out["p_cvr"].numpy(), rtol=1e-6)


def test_calibrator_weight_defaults():
    from tfrs_models.cascade.models.registry import build_model

    layout = {"features": [{"name": "f", "dtype": "string", "vocab": None, "group": "item",
                            "part": "context", "max_length": None, "kind": "scalar"}],
              "vocabularies": {}, "sequence_length": 0}
    weights = {m: build_model(layout, ModelConfig(name=m)).calibrator_weight for m in MODELS}
    assert weights == {"cnn_attention": 0.6, "shared_bottom": 0.0, "esmm": 0.0, "mmoe": 0.0, "aitm": 0.6}
    assert build_model(layout, ModelConfig(name="aitm", calibrator_weight=0.2)).calibrator_weight == 0.2


@pytest.mark.parametrize("model_name", MODELS)
def test_save_reload_roundtrip(model_name, cascade_layout, cascade_batch, tmp_path):
    from harness import check_save_reload_roundtrip

    from tfrs_models.cascade.export import export_saved_model

    model = _fitted(cascade_layout, cascade_batch, model_name)
    out = check_save_reload_roundtrip(model, cascade_batch, tmp_path, save=export_saved_model)
    assert {"p_click", "p_conversion"} <= set(out)
    assert out["p_click"].shape == (32,)
    assert np.all((out["p_conversion"] >= 0) & (out["p_conversion"] <= 1))


@pytest.mark.slow
@pytest.mark.parametrize("encoder", [e for e in ENCODERS if e != "tcn"])
def test_every_encoder_roundtrip_cnn_attention(encoder, cascade_layout, cascade_batch, tmp_path):
    from harness import check_save_reload_roundtrip

    from tfrs_models.cascade.export import export_saved_model

    model = _fitted(cascade_layout, cascade_batch, "cnn_attention", encoder=encoder)
    check_save_reload_roundtrip(model, cascade_batch, tmp_path, save=export_saved_model)


def test_same_seed_same_predictions(cascade_layout, cascade_batch):
    a = _fitted(cascade_layout, cascade_batch, "aitm", encoder="mean", seed=3)(cascade_batch)
    b = _fitted(cascade_layout, cascade_batch, "aitm", encoder="mean", seed=3)(cascade_batch)
    np.testing.assert_allclose(a["p_conversion"].numpy(), b["p_conversion"].numpy(), rtol=1e-6)


@pytest.mark.parametrize("model_name", ["cnn_attention", "esmm"])
def test_save_reload_roundtrip_with_title_tokens(model_name, tmp_path):
    """World data carries the candidate's ``title_tokens``: the serving signature takes them as
    a ``[None, max_length]`` string input and a reloaded model predicts the same; other titles
    give other predictions (the feature reaches the heads)."""
    import tensorflow as tf
    from cascade_fixture_data import write_sequence_dataset
    from harness import check_save_reload_roundtrip

    from tfrs_models.cascade.export import export_saved_model, input_signature
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.input import dataset_batches
    from tfrs_models.cascade.train import layout_of

    spec = load_dataset(write_sequence_dataset(tmp_path / "data", rows=64, titles=True))
    layout = layout_of(spec)
    batch = next(iter(dataset_batches(spec, "train", 32, order="sequential_records")))
    assert input_signature(layout)["title_tokens"].shape.as_list() == [None, 4]
    model = _fitted(layout, batch, model_name)
    check_save_reload_roundtrip(model, batch, tmp_path / "saved", save=export_saved_model)
    other = dict(batch, title_tokens=tf.fill(tf.shape(batch["title_tokens"]), "good"))
    assert not np.allclose(model(batch)["p_click"].numpy(), model(other)["p_click"].numpy())
