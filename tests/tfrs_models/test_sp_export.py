"""The selling-point family's serving export: the published signatures over the SF log's raw
strings score as the Keras model does on the pipeline's tensors, in process and after a reload in
a fresh process (tests/harness.py) — for BM, MTDL and AMTDL — and ``adpush train sf``'s
``prepare_run`` writes the run's one SavedModel with the kept epoch's validation figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from harness import check_saved_model_reload
from tfrs_models.input import make_dataset
from tfrs_models.selling_point import export
from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig
from tfrs_models.selling_point.models import build_model

SIGNATURES = {"serving_default", "regress", "classify", "select_selling_points"}


def _text(values) -> str:
    return " ".join(v.decode() for v in values if v)


def raw_log_values(batch, names) -> dict[str, np.ndarray]:
    """The SF log's raw strings (sf_impressions.csv + users.csv) of a parsed pipeline batch."""
    raw = {}
    for name in names:
        if name == "query":
            raw[name] = np.array([_text(row) for row in batch["query_tokens"].numpy()], dtype=object)
        elif name in export.HISTORY_FIELDS:
            raw[name] = np.array([_text(row) for row in batch[name].numpy()], dtype=object)
        else:
            raw[name] = batch[name].numpy().astype(object)
    return raw


def _examples(raw: dict[str, np.ndarray]) -> np.ndarray:
    from tensorflow.core.example import example_pb2

    out = []
    for i in range(len(next(iter(raw.values())))):
        example = example_pb2.Example()
        for name, values in raw.items():
            example.features.feature[name].bytes_list.value.append(
                values[i] if isinstance(values[i], bytes) else values[i].encode())
        out.append(example.SerializeToString())
    return np.array(out, dtype=object)


# A fresh-process reload costs ~10-30 s on the shared 2-core box: MTDL stays in the fast suite.
@pytest.mark.parametrize("model_name", [pytest.param("bm", marks=pytest.mark.slow), "mtdl",
                                        pytest.param("amtdl", marks=pytest.mark.slow)])
def test_published_signatures_score_raw_log_values_as_the_model(sp_spec, tmp_path, model_name):
    import tensorflow as tf

    model = build_model(sp_spec, ModelConfig(name=model_name, embedding_dim=4, hidden_units=(8,)))
    batch = next(iter(make_dataset(sp_spec, "sf", "test", 12)))
    keras = model.predict_sf(batch, training=False).numpy().reshape(-1)
    assert np.std(keras) > 0  # the rows differ, so equality is not vacuous
    signatures = export.serving_signatures(model, sp_spec, k=2)
    assert set(signatures) == SIGNATURES
    names = sorted(export.raw_inputs(model))
    assert ("user_id" in names) is False and "query" in names and "sf_keyword" in names
    raw = raw_log_values(batch, names)
    context = {k: v for k, v in raw.items() if k != "sf_keyword"}
    # Each row's own keyword, the next row's, and padding (never chosen).
    candidates = [[kw, raw["sf_keyword"][(i + 1) % len(raw["sf_keyword"])], ""]
                  for i, kw in enumerate(raw["sf_keyword"])]
    calls = {"serving_default": raw, "regress": {"inputs": _examples(raw)},
             "classify": {"inputs": _examples(raw)},
             "select_selling_points": export.select_request(context, candidates)}
    expected = {name: {k: v.numpy() for k, v in signatures[name](
                    **{k: tf.constant(v) for k, v in feed.items()}).items()}
                for name, feed in calls.items()}

    # The graph splits and pads the raw strings exactly as the Beam job and the input pipeline do.
    p = expected["serving_default"]["p_sf_click"]
    np.testing.assert_allclose(p, keras, atol=1e-6)
    np.testing.assert_allclose(expected["regress"]["outputs"], p, atol=1e-6)
    np.testing.assert_allclose(expected["classify"]["scores"], np.stack([1 - p, p], axis=1), atol=1e-6)
    select = expected["select_selling_points"]
    np.testing.assert_allclose(select["scores"][:, 0], p, atol=1e-6)
    swapped = {**raw, "sf_keyword": np.roll(raw["sf_keyword"], -1)}  # each row, the next row's keyword
    p_next = signatures["serving_default"](**{k: tf.constant(v) for k, v in swapped.items()})["p_sf_click"]
    np.testing.assert_allclose(select["scores"][:, 1], p_next.numpy(), atol=1e-6)
    assert np.all(np.isneginf(select["scores"][:, 2]))
    assert select["top_k_selling_points"].shape == (12, 2)
    assert b"" not in set(select["top_k_selling_points"].ravel().tolist())

    saved = export.save(model, sp_spec, tmp_path / "export" / "saved_model", k=2)
    check_saved_model_reload(saved, calls, expected, tmp_path)


def test_select_request_pads_candidates_and_batches_scalars():
    one = export.select_request({"query": "cat_01 shoes", "gender": "1"}, ["sp_a", "sp_b"])
    assert {k: v.tolist() for k, v in one.items()} == {
        "query": ["cat_01 shoes"], "gender": ["1"], "candidate_selling_points": [["sp_a", "sp_b"]]}
    batch = export.select_request({"query": ["q1", "q2"]}, [["a"], ["b", "c", "d"]])
    assert batch["candidate_selling_points"].tolist() == [["a", "", ""], ["b", "c", "d"]]
    assert batch["query"].dtype == object


@pytest.mark.slow
def test_prepare_run_saves_once_with_the_kept_epochs_validation_figures(sp_data, sp_spec, tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    from tfrs_models.export import prepare_run
    from tfrs_models.training.strategies import train

    run = tmp_path / "run"
    config = RunConfig(data_dir=str(sp_data[0]),
                       model=ModelConfig(name="bm", embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=3, batch_size=64, patience=10, learning_rate=0.05))
    train(sp_spec, config, run, verbose=0)
    info = json.loads(prepare_run(run).read_text())
    assert info["saved_model"] == "export/saved_model" and info["family"] == "selling_point/bm"
    # The weights training kept are those of the lowest validation logloss (min_improvement 0).
    history = [r for r in json.loads((run / "history.json").read_text()) if r.get("phase", "main") == "main"]
    best = min(history, key=lambda r: r["valid_logloss"])
    assert info["validation"] == {"split": "valid", "epoch": best["epoch"], "metrics": {
        "auc": best["valid_auc"], "logloss": best["valid_logloss"]}}
    # Warm-up requests name exactly the inputs of the signatures they are for.
    model = saved_model_pb2.SavedModel()
    model.ParseFromString((run / "export" / "saved_model" / "saved_model.pb").read_bytes())
    defs = model.meta_graphs[0].signature_def
    assert SIGNATURES <= set(defs)
    for name, inputs in info["warmup_inputs"].items():
        assert set(inputs) == set(defs[name].inputs), name
