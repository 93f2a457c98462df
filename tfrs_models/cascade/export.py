"""SavedModel export of a cascade model with a ``serving_default`` signature over raw features.

Inputs are the spec's model features by name — scalars ``[None]``, feature lists
``[None, max_length]`` (left-padded with "" / 0, most recent last, as
``tfrs_models.input.parse_batch_fn`` produces) — and outputs ``p_click``, ``p_conversion`` (and ``p_cvr`` for ESMM), each ``[None]``.
No training knob (dropout rate, phase flag) is an input; the graph needs no Python to load.

``save_run`` (cascade/train.py) writes it once, as ``RUN/export/saved_model``; ``prepare_run``
(called by ``adpush train cascade`` through ``tfrs_models.export.prepare_run``) returns the run's
``export_info.json`` content, with the validation figures of the epoch early stopping restored.
"""
from __future__ import annotations

from pathlib import Path

from adpush_core.errors import UserError
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


# Keras history key -> the flat name the export gate reads.
VALIDATION_FIGURES = {"val_click_auc": "click.auc", "val_conversion_auc": "conversion.auc",
                      "val_cvr_auc_clicked": "cvr_auc_clicked", "val_loss": "loss"}


def kept_epoch(history: list[dict]) -> dict | None:
    """The epoch record (history.json) whose weights training kept: the first with the lowest
    ``val_objective``, which ``EarlyStopping(restore_best_weights=True)`` restores when training
    ends, stopped early or not (tf-keras 2.21). None without a validation split."""
    scored = [record for record in history if record.get("val_objective") is not None]
    return min(scored, key=lambda record: record["val_objective"]) if scored else None


def prepare_run(run_dir: Path) -> dict:
    """``export_info`` of a cascade run whose ``save_run`` wrote ``RUN/export/saved_model``."""
    from tfrs_models import run_dir as run_files  # noqa: PLC0415
    from tfrs_models.export import SAVED_MODEL_DIR, validation_section  # noqa: PLC0415

    saved = run_dir / SAVED_MODEL_DIR
    if not (saved / "saved_model.pb").is_file():
        raise UserError(f"{saved} has no saved_model.pb: did the cascade training finish?")
    config = run_files.read(run_dir, run_files.CONFIG)
    info = {"saved_model": SAVED_MODEL_DIR, "family": f"cascade/{config['model']['name']}"}
    kept = kept_epoch(run_files.read(run_dir, run_files.HISTORY))
    if kept is not None:
        info["validation"] = validation_section(kept["epoch"], {
            flat: kept[key] for key, flat in VALIDATION_FIGURES.items() if key in kept})
    return info
