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

    model = build_model(sp_spec, ModelConfig(model="mtdl", embedding_dim=4, hidden_units=(8,)))
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


@pytest.mark.slow
def test_run_exports_through_the_serving_contract(sp_data, sp_spec, tmp_path):
    import json

    import tensorflow as tf

    from serving.export import export_run
    from tfrs_models.selling_point.config import RunConfig, TrainConfig
    from tfrs_models.selling_point.export import write_serving_export
    from tfrs_models.training.strategies import train

    run = tmp_path / "run"
    config = RunConfig(data_dir=str(sp_data[0]),
                       model=ModelConfig(model="amtdl", embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=1, batch_size=64))
    result = train(sp_spec, config, run, verbose=0)
    write_serving_export(result.model, run)
    info = json.loads((run / "export_info.json").read_text())
    assert info["family"] == "selling_point/amtdl"
    published = export_run(run, tmp_path / "models", "sp")
    loaded = tf.saved_model.load(str(published))
    assert {"serving_default", "select_selling_points", "predict_ad_click"} <= set(loaded.signatures)
    warm = info["warmup_inputs"]["serving_default"]
    context = {k: tf.constant(v) for k, v in warm.items() if k != "sf_keyword"}
    candidates = tf.constant([["sp_color_00", "sp_size_01", ""]] * len(warm["user_id"]))
    out = loaded.signatures["select_selling_points"](candidate_selling_points=candidates, **context)
    single = result.model.predict_sf({**context, "sf_keyword": candidates[:, 1]}).numpy()
    np.testing.assert_allclose(out["scores"].numpy()[:, 1], single, rtol=1e-5)
    assert np.all(np.isneginf(out["scores"].numpy()[:, 2]))
    # regress over serialized tf.Example: varlen features of any length, parsed ragged.
    rows = [{k: (v[i] if isinstance(v[i], list) else [v[i]]) for k, v in warm.items()}
            for i in range(len(warm["user_id"]))]
    rows[0]["history_sf_keywords"] = [t for t in rows[0]["history_sf_keywords"] if t][:2]
    serialized = [tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in v]))
        for k, v in row.items()})).SerializeToString() for row in rows]
    regressed = loaded.signatures["regress"](inputs=tf.constant(serialized))["outputs"].numpy()
    padded = {k: tf.constant(v) for k, v in warm.items()}
    padded["history_sf_keywords"] = tf.constant(
        [rows[0]["history_sf_keywords"] + [""] * (20 - len(rows[0]["history_sf_keywords"]))]
        + [r["history_sf_keywords"] + [""] * (20 - len(r["history_sf_keywords"])) for r in rows[1:]])
    np.testing.assert_allclose(regressed, result.model.predict_sf(padded).numpy(), rtol=1e-5)
