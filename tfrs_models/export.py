"""A training run's serving export: ``RUN/export/saved_model`` and ``RUN/export_info.json``.

Both families write them at the end of ``adpush train`` (``prepare_run``), so the model is saved
once per run; ``adpush export`` (``serving.export.export_run``) only copies that SavedModel into a
new version. ``export_info.json`` is the contract with ``serving`` (serving/README.md)::

    {"saved_model": "export/saved_model",
     "family": "selling_point/amtdl",
     "validation": {"split": "valid", "epoch": 3, "metrics": {"auc": 0.61, "logloss": 0.22}},
     "warmup_inputs": {"serving_default": {"query": ["cat_00"], ...}}}

``validation`` holds the validation-split figures of the epoch whose weights were exported (the
export gate compares them; the test split is never used for a choice). It is absent when the
run had no validation split.
"""
from __future__ import annotations

import json
from pathlib import Path

from adpush_core.errors import UserError

EXPORT_INFO = "export_info.json"
SAVED_MODEL_DIR = "export/saved_model"
FAMILIES = ("selling_point", "cascade")


def run_family(run_dir: str | Path) -> str:
    """The ``family`` of ``RUN/config.json``; a UserError naming the file when it is not one."""
    config = Path(run_dir) / "config.json"
    if not config.is_file():
        raise UserError(f"{config} does not exist: {run_dir} is not a training run")
    family = json.loads(config.read_text()).get("family")
    if family not in FAMILIES:
        raise UserError(f"{config}: 'family' is {family!r}, expected one of {', '.join(FAMILIES)}")
    return family


def prepare_run(run_dir: str | Path) -> Path:
    """Write the run's serving export through its family's ``export.prepare_run``; return the
    path of ``RUN/export_info.json``."""
    run_dir = Path(run_dir)
    if run_family(run_dir) == "selling_point":
        from tfrs_models.selling_point.export import prepare_run as prepare  # noqa: PLC0415
    else:
        from tfrs_models.cascade.export import prepare_run as prepare  # noqa: PLC0415
    info = prepare(run_dir)
    path = run_dir / EXPORT_INFO
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path


def validation_section(epoch: int | None, metrics: dict[str, float]) -> dict:
    """``export_info.json``'s ``validation``: the exported epoch and its flat figures."""
    return {"split": "valid", "epoch": epoch, "metrics": {k: float(v) for k, v in sorted(metrics.items())}}
