"""SavedModel export of a cascade model with a ``serving_default`` signature over raw features.

Inputs are the spec's model features by name — scalars ``[None]``, feature lists
``[None, max_length]`` (left-padded with "" / 0, most recent last, as
``tfrs_models.input.parse_batch_fn`` produces) — and outputs ``p_click``, ``p_conversion`` (and ``p_cvr`` for ESMM), each ``[None]``.
No training knob (dropout rate, phase flag) is an input; the graph needs no Python to load.
"""
from __future__ import annotations

from pathlib import Path

from adpush_core.tfenv import import_tensorflow


tf = import_tensorflow()

_DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}


def input_signature(layout: dict) -> dict[str, tf.TensorSpec]:
    """TensorSpecs of the serving inputs, one per model feature."""
    specs = {}
    for f in layout["features"]:
        shape = [None] if (f["part"] != "sequence" and f.get("kind", "scalar") == "scalar") else [None, f["max_length"]]
        specs[f["name"]] = tf.TensorSpec(shape, _DTYPES[f["dtype"]], name=f["name"])
    return specs


def serving_inputs(layout: dict, batch: dict) -> dict:
    """The subset of a parsed batch that the serving signature takes."""
    return {name: batch[name] for name in input_signature(layout)}


def export_saved_model(model, path: str | Path) -> Path:
    """Write ``model`` as a SavedModel at ``path`` and return the path."""
    serve = model.serving_function()
    module = tf.Module()
    module.model = model
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return Path(path)
