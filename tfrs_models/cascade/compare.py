"""``adpush compare --family cascade``: every cascade model, same budget and seeds, one table.

The tables follow 000 Tables II–V (AUC, accuracy, recall, specificity per task) and 002 Table 7
(AUC, GAUC, logloss), with mean ± std over seeds, and an ``oracle`` row on world data: the same
metrics computed from the world's true probabilities (``<logs>/oracle/behaviour.csv``, joined on
the sequence dataset's ``user_id`` + ``ts`` keys). The oracle's ``p_conversion`` is read as the
entire-space probability P(click ∧ conversion | impression), like the models' ``p_conversion``;
its CVR on clicked impressions is ``p_conversion / p_click``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from tfrs_models.cascade.config import MODELS, ModelConfig, TrainConfig
from tfrs_models.cascade.encoders.registry import EncoderConfig

METRICS = ("auc", "gauc", "logloss", "accuracy", "recall", "specificity")
TASKS = ("click", "conversion")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    data_dir: str
    out_dir: str
    seeds: int = 3
    first_seed: int = 0
    models: tuple[str, ...] = MODELS
    encoders: tuple[str, ...] = ("tcn",)
    oracle_logs: str | None = None
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    embedding_dim: int = 8
    patience: int = 1


def oracle_predictions(logs_dir: str | Path, pred: dict) -> dict:
    """Oracle probabilities for the rows of ``pred`` (joined on user_id + ts).

    Rows without an oracle entry are dropped (returns the aligned subset of labels and keys).
    """
    import pandas as pd

    oracle = pd.read_csv(Path(logs_dir) / "oracle" / "behaviour.csv")
    keys = pd.DataFrame({"user_id": [int(u) for u in pred["user_id"].astype(str)],
                         "ts": pred["ts"].astype(np.int64), "row": np.arange(len(pred["ts"]))})
    joined = keys.merge(oracle, on=["user_id", "ts"], how="inner").sort_values("row")
    rows = joined["row"].to_numpy()
    p_click = joined["p_click"].to_numpy(dtype=np.float64)
    p_conversion = joined["p_conversion"].to_numpy(dtype=np.float64)
    return {"p_click": p_click, "p_conversion": p_conversion,
            "p_cvr": p_conversion / np.maximum(p_click, 1e-12),
            "click": pred["click"][rows], "conversion": pred["conversion"][rows],
            "user_id": pred["user_id"][rows], "joined_rows": len(rows)}


def _flatten(scores: dict) -> dict:
    flat = {f"{task}_{m}": scores[task][m] for task in TASKS for m in METRICS}
    flat["cvr_auc_clicked"] = scores["cvr_auc_clicked"]
    return flat


def _mean_std(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan"),
            "std": float(np.nanstd(arr)) if np.isfinite(arr).any() else float("nan"),
            "values": [float(v) for v in arr]}


def run_compare(config: CompareConfig, progress=print) -> dict:
    """Train every (model, encoder) for each seed, score the test split, write the tables."""
    from tfrs_models.cascade.input import load_spec
    from tfrs_models.cascade.train import predict_split, score, train_model

    spec = load_spec(config.data_dir)
    encoders = config.encoders if spec.sequence_length else ("none",)
    rows, last_pred = [], None
    for model_name in config.models:
        for encoder in encoders:
            per_seed = []
            for seed in range(config.first_seed, config.first_seed + config.seeds):
                model_config = ModelConfig(name=model_name, embedding_dim=config.embedding_dim,
                                           encoder=EncoderConfig(name=encoder))
                train_config = dataclasses.replace(config.train, seed=seed)
                model, history = train_model(spec, model_config, train_config, patience=config.patience)
                pred = predict_split(lambda b: model(b, training=False), spec, "test")
                per_seed.append(_flatten(score(pred)))
                per_seed[-1]["epochs_run"] = float(len(history.get("loss", [])))
                last_pred = pred
                progress(f"{model_name}/{encoder} seed {seed}: click AUC "
                         f"{per_seed[-1]['click_auc']:.4f}, conversion AUC {per_seed[-1]['conversion_auc']:.4f}")
            rows.append({"model": model_name, "encoder": encoder,
                         "metrics": {k: _mean_std([s[k] for s in per_seed]) for k in per_seed[0]}})
    if config.oracle_logs and last_pred is not None:
        oracle = oracle_predictions(config.oracle_logs, last_pred)
        flat = _flatten(score(oracle))
        rows.append({"model": "oracle", "encoder": "-", "joined_rows": oracle["joined_rows"],
                     "metrics": {k: {"mean": v, "std": 0.0, "values": [v]} for k, v in flat.items()}})
    result = {"data_dir": str(config.data_dir), "dataset": spec.name,
              "seeds": list(range(config.first_seed, config.first_seed + config.seeds)),
              "train": dataclasses.asdict(config.train), "patience": config.patience, "rows": rows}
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    (out / "compare.md").write_text(to_markdown(result))
    return result


def _cell(stat: dict, digits: int = 4) -> str:
    if stat["mean"] is None or (isinstance(stat["mean"], float) and math.isnan(stat["mean"])):
        return "n/a"
    if len(stat["values"]) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def to_markdown(result: dict) -> str:
    """One table per task (000 Tables II–V layout) plus the CVR-on-clicks AUC."""
    lines = [f"# Cascade comparison on `{result['data_dir']}` ({result['dataset']})", "",
             f"Seeds {result['seeds']}; mean ± std over seeds; test split. "
             f"Budget: {result['train']['epochs']} epoch(s), batch {result['train']['batch_size']}, "
             f"learning rate {result['train']['learning_rate']}; early stopping on the validation "
             f"loss (patience {result.get('patience', 1)}, best epoch restored).", ""]
    for task in TASKS:
        lines += [f"## {task.capitalize()} (all impressions)", "",
                  "| model | encoder | " + " | ".join(m.upper() if m.endswith("auc") else m for m in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for row in result["rows"]:
            cells = [_cell(row["metrics"][f"{task}_{m}"]) for m in METRICS]
            lines.append(f"| {row['model']} | {row['encoder']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## CVR AUC on clicked impressions", "", "| model | encoder | AUC |", "|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['encoder']} | {_cell(row['metrics']['cvr_auc_clicked'])} |")
    return "\n".join(lines) + "\n"
