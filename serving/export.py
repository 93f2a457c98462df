"""``adpush export``: publish the SavedModel a training run wrote (``RUN/export_info.json``).

``export_run`` reads ``RUN/export_info.json`` (contract in ``serving/README.md``), types the
warm-up requests from the SignatureDefs, refuses py-func ops, and publishes the run's SavedModel
as the next version (``serving.publish``; ``serving.warmup``; ``serving.verify``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from adpush_core.tfenv import import_tensorflow
from serving.errors import ExportError
from serving.publish import publish_saved_model
from serving.verify import denylisted_ops, signature_defs

EXPORT_INFO = "export_info.json"


def read_export_info(run_dir: str | os.PathLike) -> dict:
    """``RUN/export_info.json``, which the training code writes (contract in serving/README.md)."""
    info_path = Path(run_dir) / EXPORT_INFO
    if not info_path.is_file():
        raise ExportError(f"{info_path} not found: `adpush train` writes it with the run's SavedModel "
                          f"(see serving/README.md); re-train runs written before it did")
    try:
        info = json.loads(info_path.read_text())
    except ValueError as err:
        raise ExportError(f"{info_path}: not JSON ({err})") from err
    if not isinstance(info, dict) or "saved_model" not in info:
        raise ExportError(f"{info_path} has no 'saved_model' field")
    return info


def export_run(run_dir: str | os.PathLike, base_path: str | os.PathLike, model_name: str,
               version: int | None = None, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Publish the SavedModel a training run left in ``run_dir`` (``RUN/export_info.json``, README).

    ``export_info.json`` fields read here:
      * ``saved_model`` (path, relative to ``run_dir``): a SavedModel written by the training code
        whose signatures already follow the serving contract (``serving_default`` over raw
        features, ``regress``/``classify`` over tf.Example, ``select_selling_points``).
      * ``warmup_inputs`` (optional): ``{signature: {input: nested list}}`` — a few real requests,
        typed from the SignatureDefs in ``saved_model.pb``.

    The SavedModel is copied, not re-saved, through ``publish_saved_model`` (atomic, versioned,
    warm-up); a model with py-func ops is refused before anything is written
    (``verify_saved_model`` runs the same check through ``saved_model_cli`` in a subprocess).
    """
    tf = import_tensorflow()

    run_dir = Path(run_dir)
    info = read_export_info(run_dir)
    src = (run_dir / info["saved_model"]).resolve()
    if not (src / "saved_model.pb").is_file():
        raise ExportError(f"{src} has no saved_model.pb ({run_dir / EXPORT_INFO} names it): did "
                          "training finish?")
    signatures = signature_defs(src)
    if "serving_default" not in signatures:
        raise ExportError(f"{src} has no serving_default signature")
    found = denylisted_ops(src)
    if found:
        raise ExportError(f"{src} contains ops TF Serving cannot run: {sorted(found)}")
    warmup = []
    for sig_name, inputs in (info.get("warmup_inputs") or {}).items():
        if sig_name not in signatures:
            raise ExportError(f"{run_dir / EXPORT_INFO}: warmup_inputs names {sig_name!r}, which {src} "
                              f"does not have (its signatures: {', '.join(sorted(signatures))})")
        typed = {}
        for key, tensor in signatures[sig_name].inputs.items():
            if key in inputs:
                dtype = tf.dtypes.as_dtype(tensor.dtype)
                typed[key] = np.asarray(inputs[key], dtype=object if dtype == tf.string
                                        else dtype.as_numpy_dtype)
        warmup.append((sig_name, typed))
    return publish_saved_model(src, base_path, model_name, version=version,
                               warmup_requests=warmup or None, extra_files=extra_files)
