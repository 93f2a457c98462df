"""The world's true probabilities beside a model's figures, on the same test rows.

``<logs>/oracle/behaviour.csv`` (abtest/world/behaviour.py) holds one row per ``pv``, keyed by
``user_id`` + ``ts`` like the sequence dataset, with the oracle's ``p_click`` and entire-space
``p_conversion`` = P(click ∧ conversion | impression) — read like the models' ``p_conversion``;
its CVR on clicked impressions is ``p_conversion / p_click`` — and, when the world wrote them,
the restricted ceilings: ``item`` (the true model knowing only the item) and ``context`` (+ the
local context and buying day, not the user's own taste).

Every scorer is scored on the rows that join; ``model`` is the model re-scored on exactly those
rows, so the columns of a table always compare like with like.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# scorer -> (p_click column, p_conversion column) of oracle/behaviour.csv
COLUMNS = {"ceiling_item": ("p_click_item", "p_conversion_item"),
           "ceiling_context": ("p_click_context", "p_conversion_context"),
           "oracle": ("p_click", "p_conversion")}
KEYS = ("user_id", "ts")


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime: float):
    import pandas as pd  # noqa: PLC0415

    return pd.read_csv(path)


def read_oracle(logs_dir: str | Path):
    """``oracle/behaviour.csv`` as a DataFrame (cached while the file is unchanged)."""
    from adpush_core.errors import UserError  # noqa: PLC0415

    path = Path(logs_dir) / "oracle" / "behaviour.csv"
    if not path.is_file():
        raise UserError(f"{path} does not exist: --oracle takes a simulate-logs output directory")
    return _read(str(path), path.stat().st_mtime)


def join_rows(logs_dir: str | Path, pred: dict):
    """``(rows of pred that have an oracle entry, the matching oracle rows)``, in pred's order."""
    oracle = read_oracle(logs_dir)
    import pandas as pd  # noqa: PLC0415

    keys = pd.DataFrame({"user_id": [int(u) for u in np.asarray(pred["user_id"]).astype(str)],
                         "ts": np.asarray(pred["ts"]).astype(np.int64),
                         "row": np.arange(len(pred["ts"]))})
    joined = keys.merge(oracle, on=list(KEYS), how="inner").sort_values("row")
    return joined["row"].to_numpy(), joined


def oracle_predictions(logs_dir: str | Path, pred: dict, scorer: str = "oracle") -> dict:
    """One scorer's probabilities for the rows of ``pred`` (joined on user_id + ts).

    Rows without an oracle entry are dropped: returns the aligned subset of labels and keys,
    ``p_click``, ``p_conversion``, ``p_cvr`` and ``joined_rows``.
    """
    rows, joined = join_rows(logs_dir, pred)
    click_column, conversion_column = COLUMNS[scorer]
    p_click = joined[click_column].to_numpy(dtype=np.float64)
    p_conversion = joined[conversion_column].to_numpy(dtype=np.float64)
    out = {k: np.asarray(v)[rows] for k, v in pred.items()
           if k in ("click", "conversion", "user_id", "ts")}
    out.update(p_click=p_click, p_conversion=p_conversion,
               p_cvr=p_conversion / np.maximum(p_click, 1e-12), joined_rows=len(rows))
    return out


def oracle_scores(logs_dir: str | Path, pred: dict) -> dict:
    """Figures of the model, the ceilings the log has and the oracle, all on the joined rows.

    Returns ``{"rows": n, "joined_rows": m, "model": score, "oracle": score,
    "ceiling_item": score, "ceiling_context": score}`` (ceilings only if the log has them),
    each ``score`` as ``train.score``.
    """
    from tfrs_models.cascade.train import score  # noqa: PLC0415

    rows, joined = join_rows(logs_dir, pred)
    result = {"rows": int(len(pred["ts"])), "joined_rows": int(len(rows)),
              "model": score({k: np.asarray(v)[rows] for k, v in pred.items()})}
    for scorer, (click_column, _) in COLUMNS.items():
        if click_column in joined.columns:
            result[scorer] = score(oracle_predictions(logs_dir, pred, scorer))
    return result
