"""The Ali-CCP-like ``cascade_flat`` dataset: no feature lists, 000's convolution over fields."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tfrs_models.cascade  # noqa: F401


@pytest.mark.slow
def test_flat_dataset_cnn_attention_convolves_over_fields(tmp_path):
    import tensorflow as tf

    from cascade_fixture_data import write_flat_dataset
    from harness import check_save_reload_roundtrip
    from tfrs_models.cascade.config import ModelConfig
    from tfrs_models.cascade.features import InputLayout
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.input import dataset_batches
    from tfrs_models.cascade.models.registry import build_model
    from tfrs_models.cascade.train import predict_split, score

    spec = load_dataset(write_flat_dataset(tmp_path / "out"))
    assert spec.name == "cascade_flat" and spec.sequence_length == 0
    batch = next(iter(dataset_batches(spec, "train", 16, order="sequential_records")))
    assert batch["101"].shape == (16,)
    tf.keras.utils.set_random_seed(0)
    # 5 fields, K=3, S=1, P=0 → Eq. (1) gives 3 positions.
    config = ModelConfig(name="cnn_attention", conv_filters=(4,), conv_kernel_sizes=(3,),
                         conv_strides=(1,), conv_paddings=(0,), tower_units=(8,))
    model = build_model(dataclasses.asdict(InputLayout.from_spec(spec)), config)
    assert model.encoder is None
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
    model.fit(dataset_batches(spec, "train", 16, order="sequential_records"), verbose=0)
    pred = predict_split(lambda b: model(b), spec, "test")
    assert np.isnan(score(pred)["click"]["gauc"])  # no user_id key in the flat dataset
    check_save_reload_roundtrip(model, batch, tmp_path / "rt")
