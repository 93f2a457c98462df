import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from harness import check_save_reload_roundtrip
from tfrs_models.input import make_dataset
from tfrs_models.selling_point.config import ModelConfig
from tfrs_models.selling_point.export import save_serving_model
from tfrs_models.selling_point.models import build_model


def test_saved_model_has_both_signatures_over_raw_features(sp_spec, tmp_path):
    import tensorflow as tf

    model = build_model(sp_spec, ModelConfig(name="mtdl", embedding_dim=4, hidden_units=(8,)))
    save_serving_model(model, tmp_path / "export")
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    assert set(loaded.signatures) == {"serving_default", "predict_ad_click"}
    ad_signature = loaded.signatures["predict_ad_click"]
    inputs = ad_signature.structured_input_signature[1]
    assert "title_tokens" in inputs and "clicked" not in inputs
    assert all(spec.dtype == tf.string for spec in inputs.values())
    batch = next(iter(make_dataset(sp_spec, "ad_click", "test", 8)))
    got = ad_signature(**{k: batch[k] for k in inputs})["p_ad_click"].numpy()
    np.testing.assert_allclose(got, model.predict_ad(batch).numpy(), rtol=1e-6)
    # Titles padded only to the longest real one score as with the pipeline's padding to 16.
    longest = int(np.max(np.sum(batch["title_tokens"].numpy() != b"", axis=1)))
    assert longest < 16
    short = {k: (batch[k][:, :longest] if k == "title_tokens" else batch[k]) for k in inputs}
    np.testing.assert_allclose(ad_signature(**short)["p_ad_click"].numpy(), got, rtol=1e-6)


@pytest.mark.slow
def test_harness_traces_a_signature_for_models_without_serving_function(tmp_path):
    import tensorflow as tf

    class TwoHeads(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf.keras.layers.Dense(1)

        def call(self, features, training=False):
            x = tf.concat([features["a"], tf.cast(features["b"], tf.float32)], axis=1)
            return {"p_click": tf.sigmoid(self.dense(x))[:, 0],
                    "p_conversion": tf.sigmoid(2 * self.dense(x))[:, 0]}

    model = TwoHeads()
    batch = {"a": tf.constant([[0.5, 1.0], [2.0, -1.0]]), "b": tf.constant([[3], [4]], tf.int64)}
    model(batch)
    out = check_save_reload_roundtrip(model, batch, tmp_path)
    assert set(out) == {"p_click", "p_conversion"} and out["p_click"].shape == (2,)
