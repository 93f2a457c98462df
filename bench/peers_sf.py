"""``bench/peers.py sf``: the selling-point models against standard peers on the same SF rows.

Peers, each fit on the SF train split with every choice on the validation split, scored on the
test split only, exactly the rows the models are scored on:

- ``baseline``: logistic regression on hashed keyword crosses (tfrs_models/selling_point/
  baseline.py, the one ``adpush evaluate`` reports);
- ``lightgbm``: gradient-boosted trees (LightGBM) on the candidate keyword, profile fields, query
  tokens and query category as categorical features, plus how often the candidate keyword
  occurs in the user's SF-click history and in the titles of their clicked ads; early stopping
  on the validation logloss.

Prints test AUC overall and per 001 Table 3 segment, for each peer and each given model run
(from its ``metrics.json``), and writes ``--out`` (JSON).

    python bench/peers.py sf --data W/data --runs W/table/amtdl_pretrain_finetune W/table/bm_joint
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

CATEGORICAL = ("sf_keyword", "age_bucket", "gender", "city_tier", "activity_level",
               "query_category", "query_0", "query_1", "query_2", "query_3", "user_id")
HISTORY = ("history_sf_keywords", "history_ad_title_tokens")


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="build-data output (spec.json)")
    parser.add_argument("--runs", nargs="*", default=[],
                        help="evaluated training runs (metrics.json) to show beside the peers")
    parser.add_argument("--out", default=None, help="JSON output (default DATA/peers_sf.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the LR baseline")
    parser.add_argument("--rounds", type=int, default=3000, help="LightGBM boosting round cap")
    parser.add_argument("--no-user-id", action="store_true",
                        help="skip the second LightGBM peer that also gets user_id (the "
                             "information a model trained with --use-user-id has)")


def lightgbm_frame(columns: dict, categories: dict | None = None, user_id: bool = False):
    """A pandas frame of LightGBM features; ``categories`` (from train) fixes the codes;
    ``user_id``: the user's id as one more categorical feature."""
    import pandas as pd  # noqa: PLC0415

    def text(values):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)

    frame = {}
    for name in ("sf_keyword", "age_bucket", "gender", "city_tier", "activity_level",
                 "query_category") + (("user_id",) if user_id else ()):
        if name in columns:
            frame[name] = text(columns[name])
    query = columns["query_tokens"]
    for j in range(min(4, query.shape[1])):
        frame[f"query_{j}"] = text(query[:, j])
    keyword = columns["sf_keyword"]
    for name in HISTORY:
        if name in columns:
            history = columns[name]
            frame[f"{name}_len"] = (history != b"").sum(axis=1).astype(np.float32)
            frame[f"{name}_has_candidate"] = (history == keyword[:, None]).sum(axis=1).astype(np.float32)
    frame = pd.DataFrame(frame)
    categories = categories or {c: sorted(set(frame[c])) for c in frame if c in CATEGORICAL}
    for name, values in categories.items():
        frame[name] = pd.Categorical(frame[name], categories=values)
    return frame, categories


def fit_lightgbm(train: dict, valid: dict, test: dict, seed: int, rounds: int,
                 user_id: bool = False) -> tuple[np.ndarray, dict]:
    import lightgbm as lgb  # noqa: PLC0415

    x_train, categories = lightgbm_frame(train, user_id=user_id)
    x_valid, _ = lightgbm_frame(valid, categories, user_id=user_id)
    x_test, _ = lightgbm_frame(test, categories, user_id=user_id)
    params = {"objective": "binary", "metric": "binary_logloss", "learning_rate": 0.05,
              "num_leaves": 63, "min_data_in_leaf": 50, "feature_fraction": 0.9,
              "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
              "cat_smooth": 10.0, "seed": seed, "verbose": -1, "num_threads": 2}
    booster = lgb.train(params, lgb.Dataset(x_train, train["clicked"]), num_boost_round=rounds,
                        valid_sets=[lgb.Dataset(x_valid, valid["clicked"])],
                        callbacks=[lgb.early_stopping(50, verbose=False)])
    summary = {"kind": "LightGBM, categorical ids + history match counts"
                       + (" + user_id" if user_id else ""),
               "best_iteration": int(booster.best_iteration),
               "valid_logloss": float(booster.best_score["valid_0"]["binary_logloss"]),
               "features": list(x_train.columns)}
    return booster.predict(x_test, num_iteration=booster.best_iteration), summary


def run(args) -> int:
    import tfrs_models  # noqa: F401, PLC0415 - selects Keras 2
    from tfrs_models import metrics  # noqa: PLC0415
    from tfrs_models.input import load_spec, read_columns  # noqa: PLC0415
    from tfrs_models.selling_point import baseline  # noqa: PLC0415
    from tfrs_models.selling_point.evaluation import table3_segments_of  # noqa: PLC0415

    spec = load_spec(args.data)
    names = sorted(set(baseline.baseline_columns(spec)) | {"impression_id", "user_id",
                                                         "query_category", "query_tokens"})
    names = [n for n in names if n in spec.dataset("sf").features]
    split = {s: read_columns(spec, "sf", s, names) for s in ("train", "valid", "test")}
    test = split["test"]
    labels = test["clicked"]
    scores, summaries, seconds = {}, {}, {}
    start = time.time()
    scores["lightgbm"], summaries["lightgbm"] = fit_lightgbm(split["train"], split["valid"], test,
                                                             args.seed, args.rounds)
    seconds["lightgbm"] = round(time.time() - start, 1)
    if not args.no_user_id and "user_id" in split["train"]:
        start = time.time()
        scores["lightgbm_user_id"], summaries["lightgbm_user_id"] = fit_lightgbm(
            split["train"], split["valid"], test, args.seed, args.rounds, user_id=True)
        seconds["lightgbm_user_id"] = round(time.time() - start, 1)
    if not args.no_baseline:
        start = time.time()
        fitted = baseline.HashedCrossBaseline().fit(split["train"], split["valid"])
        scores["baseline"], summaries["baseline"] = fitted.predict(test), fitted.summary()
        seconds["baseline"] = round(time.time() - start, 1)
    segments = table3_segments_of(spec, test["user_id"])
    blocks = {"overall": np.ones(labels.size, bool),
              **{name: segments == name for name in sorted(set(segments.tolist()))}}
    table = {who: {b: metrics.auc(labels[m], s[m]) for b, m in blocks.items()}
             for who, s in scores.items()}
    for run_dir in args.runs:
        result = json.loads((Path(run_dir) / "metrics.json").read_text())
        if result["rows"] != labels.size:
            raise SystemExit(f"{run_dir}: scored {result['rows']} test rows, the data has {labels.size}")
        table[Path(run_dir).name] = {
            "overall": result["test"]["model"]["auc"],
            **{b: result["segments"].get(b, {}).get("model", {}).get("auc") for b in blocks
               if b != "overall"}}
    header = "| test AUC | " + " | ".join(blocks) + " |"
    lines = [header, "|---|" + "---|" * len(blocks)]
    for who, row in table.items():
        lines.append(f"| {who} | " + " | ".join("–" if row.get(b) is None else f"{row[b]:.4f}"
                                                for b in blocks) + " |")
    print("\n".join(lines))
    out = Path(args.out) if args.out else Path(args.data) / "peers_sf.json"
    out.write_text(json.dumps({"data": args.data, "n_test": int(labels.size),
                               "rows_per_block": {b: int(m.sum()) for b, m in blocks.items()},
                               "auc": table, "peers": summaries, "seconds": seconds}, indent=1))
    return 0
