"""Batch prediction of a selling-point model over one split of the data."""
from __future__ import annotations

import numpy as np

from tfrs_models.input import DataSpec, make_dataset
from tfrs_models.selling_point.models import OUTPUT_NAMES, SellingPointModel, prediction_function


def predict_split(model: SellingPointModel, spec: DataSpec, task: str, split: str,
                  batch_size: int = 1024, columns=("clicked", "impression_id", "user_id")) -> dict:
    """Predict every row of ``task``'s ``split``.

    Returns:
        ``{"prob": [N] float, <column>: [N]}`` for each requested column present in the data.
    """
    serve = getattr(model, "_prediction_functions", {}).get(task)
    if serve is None:
        serve = prediction_function(model, task)
        model.__dict__.setdefault("_prediction_functions", {})[task] = serve
    inputs = set(serve.input_signature[0])
    present = [c for c in columns if c in spec.dataset(task).features]
    out: dict[str, list] = {"prob": [], **{c: [] for c in present}}
    for batch in make_dataset(spec, task, split, batch_size, names=inputs | set(present)):
        out["prob"].append(serve({k: batch[k] for k in inputs})[OUTPUT_NAMES[task]].numpy())
        for c in present:
            out[c].append(batch[c].numpy())
    return {k: np.concatenate(v) if v else np.array([]) for k, v in out.items()}
