"""Serving signatures of a trained selling-point model (for the serving package's export).

``serving_signatures(model)`` gives ``{"serving_default": SF scorer}`` plus
``"predict_ad_click"`` for MTDL/AMTDL; each takes raw feature tensors (strings; varlen features
``[B, L]`` padded with ``""``, any L) — vocabularies are StringLookup assets inside the model,
there are no training knobs among the inputs.
"""
from __future__ import annotations

from pathlib import Path

from tfrs_models._tf import import_tensorflow
from tfrs_models.selling_point.models import AD, SF, SellingPointModel, prediction_function

tf = import_tensorflow()


def serving_signatures(model: SellingPointModel) -> dict:
    """``{signature name: tf.function}`` over dicts of raw features."""
    signatures = {"serving_default": prediction_function(model, SF)}
    if model.config.multi_task:
        signatures["predict_ad_click"] = prediction_function(model, AD)
    return signatures


def save_serving_model(model: SellingPointModel, export_dir) -> Path:
    """``tf.saved_model.save`` the model with ``serving_signatures``; returns ``export_dir``.

    Writes in place — the serving package owns versioned directories and atomic renames.
    """
    signatures = serving_signatures(model)
    module = tf.Module()
    module.model = model
    for name, fn in signatures.items():
        setattr(module, name, fn)
    tf.saved_model.save(module, str(export_dir), signatures=signatures)
    return Path(export_dir)


EXPORT_DIR = "export/saved_model"


def write_serving_export(model: SellingPointModel, run_dir, warmup_rows: int = 2) -> Path:
    """Write ``RUN/export/saved_model`` and ``RUN/export_info.json`` (serving/README.md contract).

    Signatures come from ``serving.export``'s builders over the SF scorer
    (``serving_default`` → ``p_sf_click``, ``regress`` and ``classify`` over tf.Example with
    varlen features parsed ragged, and ``select_selling_points`` with ``sf_keyword`` as the
    candidate), plus ``predict_ad_click``
    for MTDL/AMTDL. A few SF validation rows become the warm-up requests.
    """
    import json  # noqa: PLC0415

    from serving import export as serving_export  # noqa: PLC0415
    from tfrs_models.input import make_dataset  # noqa: PLC0415

    run_dir = Path(run_dir)
    input_spec = model.input_signature(SF)

    def score(features):
        # tf.Example inputs parse varlen features as ragged; the model wants ""-padded dense.
        dense = {k: v.to_tensor(default_value="") if isinstance(v, tf.RaggedTensor) else v
                 for k, v in features.items()}
        return model.predict_sf(dense, training=False)

    example_spec = {n: tf.io.RaggedFeature(s.dtype, row_splits_dtype=tf.int64)
                    if s.shape.rank == 2 else s for n, s in input_spec.items()}
    context_spec = {n: s for n, s in input_spec.items() if n != "sf_keyword"}
    signatures = {
        "serving_default": serving_export.make_predict_signature(
            lambda f: {"p_sf_click": score(f)}, input_spec),
        "regress": serving_export.make_regress_signature(score, example_spec),
        "classify": serving_export.make_classify_signature(score, example_spec),
        serving_export.SELECT_SELLING_POINTS: serving_export.make_select_selling_points_signature(
            score, context_spec, candidate_feature="sf_keyword", candidate_dtype=tf.string),
    }
    if model.config.multi_task:
        signatures["predict_ad_click"] = prediction_function(model, AD)
    module = tf.Module()
    module.model = model
    module.signature_functions = dict(signatures)
    tf.saved_model.save(module, str(run_dir / EXPORT_DIR), signatures=signatures)
    batch = next(iter(make_dataset(model.spec, SF, "valid", warmup_rows, names=set(input_spec))))

    def _plain(value):
        return value.decode() if isinstance(value, bytes) else value.item() if hasattr(value, "item") else value

    warmup = {name: [[_plain(v) for v in row] if getattr(row, "ndim", 0) else _plain(row)
                     for row in batch[name].numpy()] for name in input_spec}
    info = {"saved_model": EXPORT_DIR, "family": f"selling_point/{model.config.model}",
            "warmup_inputs": {"serving_default": warmup}}
    (run_dir / "export_info.json").write_text(json.dumps(info, indent=1))
    return run_dir / EXPORT_DIR
