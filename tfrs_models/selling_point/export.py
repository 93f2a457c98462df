"""Serving signatures of a trained selling-point model (for the serving package's export).

``serving_signatures(model)`` gives ``{"serving_default": SF scorer}`` plus
``"predict_ad_click"`` for MTDL/AMTDL; each takes raw feature tensors (strings; varlen features
``[B, L]`` padded with ``""``, any L) — vocabularies are StringLookup assets inside the model,
there are no training knobs among the inputs.
"""
from __future__ import annotations

from pathlib import Path
from adpush_core.tfenv import import_tensorflow
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

    Writes in place — the serving package owns versioned directories and atomic renames. The
    export that ``adpush train sf`` publishes is ``serving.families.prepare_run``'s (raw log
    strings, ``select_selling_points``, tf.Example signatures); this one keeps the padded
    ``[B, L]`` feature layout the model is trained on.
    """
    signatures = serving_signatures(model)
    module = tf.Module()
    module.model = model
    for name, fn in signatures.items():
        setattr(module, name, fn)
    tf.saved_model.save(module, str(export_dir), signatures=signatures)
    return Path(export_dir)
