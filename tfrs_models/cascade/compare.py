"""``adpush compare --family cascade``: every cascade model, same budget and seeds, one table.

The tables follow 000 Tables II–V (AUC, accuracy, recall, specificity per task) and 002 Table 7
(AUC, GAUC, logloss), with mean ± std over seeds. With ``--learning-rates`` each model trains at
every rate and seed, and the rate with the lowest mean validation objective is the one whose
test figures are reported (the test split is only scored). On world data the table ends with
the restricted ceilings and the ``oracle`` row: the same metrics from the world's probabilities
on the same test rows (oracle.py). ``bench/peers.py cascade --compare DIR`` adds the LightGBM
peer's row to a written table.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from tfrs_models.cascade.config import MODELS, ModelConfig, TrainConfig
from tfrs_models.cascade.encoders.registry import EncoderConfig
from tfrs_models.cascade.oracle import COLUMNS as ORACLE_SCORERS
from tfrs_models.cascade.oracle import oracle_predictions  # noqa: F401  (re-exported)

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
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)  # name/encoder replaced
    learning_rates: tuple[float, ...] = ()   # chosen on validation; () = train.learning_rate
    patience: int = 1


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
    """Train every (model, encoder, learning rate, seed), score the test split, write the tables."""
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.cascade.oracle import oracle_scores
    from tfrs_models.cascade.train import predict_split, score, train_model

    spec = load_dataset(config.data_dir)
    encoders = config.encoders if spec.sequence_length else ("none",)
    rates = config.learning_rates or (config.train.learning_rate,)
    seeds = list(range(config.first_seed, config.first_seed + config.seeds))
    rows, last_pred = [], None
    for model_name in config.models:
        for encoder in encoders:
            model_config = dataclasses.replace(
                config.model, name=model_name,
                encoder=dataclasses.replace(config.model.encoder, name=encoder))
            by_rate = {}
            for rate in rates:
                per_seed = []
                for seed in seeds:
                    train_config = dataclasses.replace(config.train, seed=seed, learning_rate=rate)
                    model, history = train_model(spec, model_config, train_config,
                                                 patience=config.patience)
                    pred = predict_split(lambda b: model(b, training=False), spec, "test")
                    flat = _flatten(score(pred))
                    flat["epochs_run"] = float(len(history.get("loss", [])))
                    flat["valid_objective"] = float(min(history.get("val_objective", [math.nan])))
                    per_seed.append(flat)
                    last_pred = pred
                    progress(f"{model_name}/{encoder} lr {rate:g} seed {seed}: validation objective "
                             f"{flat['valid_objective']:.4f}; test click AUC {flat['click_auc']:.4f}, "
                             f"conversion AUC {flat['conversion_auc']:.4f}")
                by_rate[rate] = {k: _mean_std([s[k] for s in per_seed]) for k in per_seed[0]}
            chosen = min(rates, key=lambda r: _nan_last(by_rate[r]["valid_objective"]["mean"]))
            rows.append({"model": model_name, "encoder": encoder, "learning_rate": chosen,
                         "valid_objective_by_rate": {f"{r:g}": by_rate[r]["valid_objective"]["mean"]
                                                     for r in rates},
                         "metrics": by_rate[chosen]})
    if config.oracle_logs and last_pred is not None:
        scores = oracle_scores(config.oracle_logs, last_pred)
        for scorer in ORACLE_SCORERS:
            if scorer in scores:
                flat = _flatten(scores[scorer])
                rows.append({"model": scorer, "encoder": "-", "joined_rows": scores["joined_rows"],
                             "metrics": {k: {"mean": v, "std": 0.0, "values": [v]}
                                         for k, v in flat.items()}})
    result = {"data_dir": str(config.data_dir), "dataset": spec.name, "seeds": seeds,
              "train": dataclasses.asdict(config.train), "learning_rates": list(rates),
              "model_config": dataclasses.asdict(config.model), "patience": config.patience,
              "test_rows": int(len(last_pred["ts"])) if last_pred is not None else 0, "rows": rows}
    write_tables(result, config.out_dir)
    return result


def _nan_last(value: float) -> float:
    return math.inf if value is None or math.isnan(value) else value


def write_tables(result: dict, out_dir) -> None:
    """``OUT/compare.json`` and ``OUT/compare.md`` (model rows first; ceilings, oracle last)."""
    last = [r for r in result["rows"] if r["model"] in ORACLE_SCORERS]
    result["rows"] = [r for r in result["rows"] if r["model"] not in ORACLE_SCORERS] + last
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    (out / "compare.md").write_text(to_markdown(result))


def _cell(stat: dict, digits: int = 4) -> str:
    if stat["mean"] is None or (isinstance(stat["mean"], float) and math.isnan(stat["mean"])):
        return "n/a"
    if len(stat["values"]) > 1:
        return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}"


def to_markdown(result: dict) -> str:
    """One table per task (000 Tables II–V layout) plus the CVR-on-clicks AUC."""
    rates = result.get("learning_rates") or [result["train"]["learning_rate"]]
    rate_text = (f"learning rate {rates[0]:g}" if len(rates) == 1 else
                 f"learning rate chosen per model on the validation objective from "
                 f"{', '.join(f'{r:g}' for r in rates)}")
    lines = [f"# Cascade comparison on `{result['data_dir']}` ({result['dataset']})", "",
             f"Seeds {result['seeds']}; mean ± std over seeds; test split"
             + (f" ({result['test_rows']:,} rows)" if result.get("test_rows") else "") + ". "
             f"Budget: {result['train']['epochs']} epoch(s), batch {result['train']['batch_size']}, "
             f"{rate_text}; early stopping on the validation objective (patience "
             f"{result.get('patience', 1)}, best epoch restored). Ceilings and oracle: the world's "
             "probabilities on the same test rows.", ""]
    for task in TASKS:
        lines += [f"## {task.capitalize()} (all impressions)", "",
                  "| model | encoder | lr | " + " | ".join(m.upper() if m.endswith("auc") else m for m in METRICS) + " |",
                  "|---|---|---|" + "---|" * len(METRICS)]
        for row in result["rows"]:
            cells = [_cell(row["metrics"][f"{task}_{m}"]) for m in METRICS]
            lines.append(f"| {_name(row)} | {row['encoder']} | {_rate(row)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## CVR AUC on clicked impressions", "", "| model | encoder | lr | AUC |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {_name(row)} | {row['encoder']} | {_rate(row)} | "
                     f"{_cell(row['metrics']['cvr_auc_clicked'])} |")
    joined = {r.get("joined_rows") for r in result["rows"] if "joined_rows" in r}
    if result.get("test_rows") and joined and joined != {result["test_rows"]}:
        lines += ["", f"Note: the oracle rows cover {sorted(joined)} of {result['test_rows']:,} test "
                  "rows (rows without an oracle entry are left out of those rows only)."]
    return "\n".join(lines) + "\n"


def _name(row: dict) -> str:
    return row["model"].replace("ceiling_", "ceiling: ")


def _rate(row: dict) -> str:
    return f"{row['learning_rate']:g}" if row.get("learning_rate") is not None else "-"
