"""The run directory both model families write and every reader reads (docs/contracts.md §6).

``RUN/config.json``: ``{family, data_dir, datasets, model: {name, …}, train: {…}}``;
``RUN/history.json``: one record per epoch, ``[{epoch, …figures of that epoch}, …]``;
``RUN/metrics.json``: ``{family, split, rows, test: {model: {…}, <other scorer>: {…}, …},
oracle_rows?, …}`` — ``test`` maps each scorer of the test split (``model``, and where the run
was scored beside them ``oracle``, ``baseline``, ``ceiling_<name>``) to its figures, in the
family's own figure layout (selling point: ``auc``, ``gauc``, ``logloss``, …; cascade: ``click``
and ``conversion`` sections and ``cvr_auc_clicked``). No TensorFlow here.
"""
from __future__ import annotations

import json
from pathlib import Path

from adpush_core.errors import UserError

CONFIG = "config.json"
HISTORY = "history.json"
METRICS = "metrics.json"
FAMILIES = ("selling_point", "cascade")


def read(run_dir, name: str):
    """``RUN/<name>`` parsed; UserError naming the file when it is missing or not JSON."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise UserError(f"{path} does not exist; is {run_dir} a finished training run"
                        + (" (metrics.json: scored with `adpush evaluate`)?" if name == METRICS
                           else "?"))
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not JSON: {err}") from None


def write(run_dir, name: str, value) -> Path:
    """Write ``value`` as ``RUN/<name>`` (NaN written as JSON ``NaN``, as Python reads it back)."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, default=float))
    return path


def family(run_dir) -> str:
    """The ``family`` of ``RUN/config.json``; UserError when it is missing or unknown."""
    value = read(run_dir, CONFIG).get("family")
    if value not in FAMILIES:
        raise UserError(f"{Path(run_dir) / CONFIG}: family {value!r} is not one of {FAMILIES}")
    return value


def metrics_document(family_name: str, rows: int, test: dict, oracle_rows: int | None = None,
                     **extra) -> dict:
    """The ``metrics.json`` layout: ``test`` is ``{scorer: figures}`` with ``model`` first;
    ``oracle_rows`` is how many test rows the oracle and ceilings were scored on; ``extra`` is
    the family's own (selling point: ``segments``, …; cascade: ``decay_half_lives_hours``)."""
    if "model" not in test:
        raise ValueError("metrics.json's test section needs the model's figures")
    document = {"family": family_name, "split": "test", "rows": int(rows),
                "test": {"model": test["model"], **{k: v for k, v in test.items() if k != "model"}}}
    if oracle_rows is not None:
        document["oracle_rows"] = int(oracle_rows)
    document.update(extra)
    return document


def epoch_records(history: dict) -> list[dict]:
    """Keras' ``History.history`` (``{figure: [per epoch]}``) as history.json's records."""
    epochs = max((len(v) for v in history.values()), default=0)
    return [{"epoch": e, **{k: v[e] for k, v in history.items() if e < len(v)}}
            for e in range(epochs)]
