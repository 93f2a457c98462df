"""adpush's own model families, trained for a few steps, exported as `adpush export` does and
served: REST row, REST columnar and gRPC equal the in-process numbers (harness.py), and the
raw-string serving graph scores exactly as the trained Keras model does on the pipeline's tensors.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from harness import check_serving_roundtrip
from serving.export import export_run
from tfrs_models.export import prepare_run

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "tfrs_models"))
sys.path.insert(0, str(TESTS / "tfrs_models" / "cascade"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sp_dataset(tmp_path_factory):
    from selling_point_fixtures import write_dataset

    from tfrs_models.input import load_spec

    root = tmp_path_factory.mktemp("sp_family")
    write_dataset(root / "out", seed=0, logs_dir=root / "logs")
    return load_spec(root / "out")


@pytest.mark.parametrize("model_name", ["bm", "amtdl"])
def test_selling_point_family_serves_raw_log_values(sp_dataset, tmp_path, model_name):
    from test_sp_export import raw_log_values

    from tfrs_models.input import make_dataset
    from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig
    from tfrs_models.training.strategies import train

    run = tmp_path / "run"
    config = RunConfig(data_dir=sp_dataset.root,
                       model=ModelConfig(name=model_name, embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=1, batch_size=64,
                                         strategy="joint" if model_name == "bm" else "alternating"))
    result = train(sp_dataset, config, run, verbose=0)
    prepare_run(run)
    published = export_run(run, tmp_path / "models", "selling_points")
    assert published == tmp_path / "models" / "selling_points" / "1"
    # Published as trained: the run's one SavedModel, copied (never saved again).
    for name in ("saved_model.pb", "variables/variables.index"):
        assert (published / name).read_bytes() == (run / "export" / "saved_model" / name).read_bytes()

    loaded = tf.saved_model.load(str(published))
    assert {"serving_default", "regress", "classify", "select_selling_points"} <= set(loaded.signatures)
    serve = loaded.signatures["serving_default"]
    names = sorted(serve.structured_input_signature[1])
    assert all(s.dtype == tf.string and s.shape.rank == 1
               for s in serve.structured_input_signature[1].values())
    batch = next(iter(make_dataset(result.model.spec, "sf", "test", 12)))
    raw = raw_log_values(batch, names)

    # The graph splits/pads the raw strings exactly as the Beam job and the input pipeline do.
    in_process = serve(**{k: tf.constant(v.astype(str)) for k, v in raw.items()})["p_sf_click"].numpy()
    keras = result.model.predict_sf(batch, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(in_process, keras, atol=1e-6)
    assert np.std(keras) > 0  # the rows differ, so equality is not vacuous

    check_serving_roundtrip(published, "serving_default", raw, {"p_sf_click": in_process})

    # select_selling_points: one score per candidate, padding candidates never chosen.
    context = {k: v for k, v in raw.items() if k != "sf_keyword"}
    candidates = np.array([[kw, raw["sf_keyword"][(i + 1) % len(raw["sf_keyword"])], ""]
                           for i, kw in enumerate(raw["sf_keyword"])], dtype=object)
    select_inputs = {**context, "candidate_selling_points": candidates}
    select = loaded.signatures["select_selling_points"]
    expected = {k: v.numpy() for k, v in select(
        **{k: tf.constant(v.astype(str)) for k, v in select_inputs.items()}).items()}
    np.testing.assert_allclose(expected["scores"][:, 0], in_process, atol=1e-6)
    assert np.all(np.isneginf(expected["scores"][:, 2]))
    check_serving_roundtrip(published, "select_selling_points", select_inputs, expected)


@pytest.mark.parametrize("model_name", ["cnn_attention", "esmm"])
def test_cascade_family_roundtrip(tmp_path, model_name):
    from cascade_fixture_data import write_sequence_dataset

    from tfrs_models.cascade.config import ModelConfig, TrainConfig
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.cascade.export import serving_inputs
    from tfrs_models.cascade.train import layout_of, predict_split, save_run, score_test, train_model
    from tfrs_models.input import dataset_batches

    spec = load_dataset(write_sequence_dataset(tmp_path / "data", rows=96, seed=1))
    model_config, train_config = ModelConfig(name=model_name), TrainConfig(epochs=1, batch_size=32)
    model, history = train_model(spec, model_config, train_config)
    run = tmp_path / "run"
    scored = score_test(predict_split(lambda b: model(b, training=False), spec, "test"))
    save_run(run, model, spec, model_config, train_config, history, scored)
    prepare_run(run)
    published = export_run(run, tmp_path / "models", "ctr_cvr")

    batch = next(iter(dataset_batches(spec, "test", 16, order="sequential_records")))
    inputs = {k: v.numpy() for k, v in serving_inputs(layout_of(spec), batch).items()}
    keras = model(batch, training=False)
    serve = tf.saved_model.load(str(published)).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    assert {"p_click", "p_conversion"} <= set(expected)
    for name in ("p_click", "p_conversion"):
        np.testing.assert_allclose(expected[name].reshape(-1), np.reshape(keras[name], [-1]), atol=1e-6)
    inputs = {k: v.astype(object) if v.dtype.kind in "SO" else v for k, v in inputs.items()}
    check_serving_roundtrip(published, "serving_default", inputs, expected)
