"""The cascade peer: LightGBM on the same rows as the CTR→CVR models, one booster for click and
one for conversion (click-and-convert over every impression, as the models' ``p_conversion``).

Features, all computed from the parsed ``sequence`` records the models read (spec.json):

- categorical ids: candidate ``item_id`` and ``category``, ``user_id`` and the profile fields,
  coded by the build's train vocabularies (OOV → 0, as the models' lookups);
- token bags (the candidate's ``title_tokens`` where the build has them, i.e. the world): one
  0/1 column per vocabulary token (the models mean-pool the same tokens' embeddings); the matrix
  is then sparse (CSR);
- history aggregates (the hand-made versions of what the sequence encoders must learn):
  history length; click-like actions (cart/fav) and views of the candidate's category among the
  last 5 / 15 / all events; the same for the candidate item; buys; the time since the last
  event, the last same-category event, the last click-like action and the last buy; the
  share of click-like actions in the whole history.

Boosters stop early on the validation split's logloss; the test split is only scored. With
``--oracle LOGS`` (world data) the oracle's figures are computed on exactly the same test rows.

    .venv/bin/python bench/peers.py cascade --data DATA [--oracle LOGS] [--seeds 3] \
        [--compare COMPARE_DIR] [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLICK_LIKE = (b"cart", b"fav")
NO_EVENT_GAP = 20.0  # log1p seconds standing for "never" (about 15 years)
LGB_PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31,
              "min_data_in_leaf": 40, "feature_fraction": 0.9, "bagging_fraction": 0.9,
              "bagging_freq": 1, "lambda_l2": 1.0, "cat_smooth": 20.0, "cat_l2": 10.0,
              "max_cat_to_onehot": 8, "verbose": -1, "num_threads": 2}


def read_split(spec, split: str, batch_size: int = 8192) -> dict:
    """Every parsed column of one split as numpy (feature lists left-padded, latest last)."""
    from tfrs_models.input import dataset_batches  # noqa: PLC0415

    columns: dict[str, list] = {}
    for batch in dataset_batches(spec, split, batch_size, order="sequential_records"):
        for name, value in batch.items():
            columns.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(parts) for name, parts in columns.items()}


def _codes(values, vocab_path) -> np.ndarray:
    """Vocabulary index + 1 of each string (0 = OOV or padding), as the models' lookups."""
    tokens = Path(vocab_path).read_text().splitlines()
    index = {t.encode(): i + 1 for i, t in enumerate(tokens)}
    flat = [index.get(v, 0) for v in np.asarray(values).reshape(-1)]
    return np.asarray(flat, np.int64).reshape(np.shape(values))


def _last_k(mask, k: int) -> np.ndarray:
    """Count of True among the last ``k`` positions (the ``k`` most recent events)."""
    return mask[:, -k:].sum(axis=1)


def _gap_of_last(gaps, mask) -> np.ndarray:
    """log1p seconds from the most recent event where ``mask`` holds; NO_EVENT_GAP if none."""
    masked = np.where(mask, gaps, np.inf)
    out = masked.min(axis=1)
    return np.where(np.isfinite(out), out, NO_EVENT_GAP)


def _bag_of_words(values, vocab_path, name: str):
    """``(CSR [N, V] of 0/1, column names)``: which vocabulary tokens each row's bag holds
    (OOV and padding dropped)."""
    from scipy import sparse  # noqa: PLC0415

    tokens = Path(vocab_path).read_text().splitlines()
    codes = _codes(values, vocab_path)                                   # [N, T], 0 = none
    row = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    col = codes.reshape(-1)
    real = col > 0
    bag = sparse.csr_matrix((np.ones(int(real.sum())), (row[real], col[real] - 1)),
                            shape=(codes.shape[0], len(tokens)))
    bag.sum_duplicates()
    bag.data = np.minimum(bag.data, 1.0)
    return bag, [f"{name}__{t}" for t in tokens]


def peer_features(rows: dict, spec):
    """``(X [N, F] float64, feature names, categorical feature names)`` for LightGBM; X is a
    CSR matrix when the spec has token bags (dense columns first, then the bags)."""
    columns: dict[str, np.ndarray] = {}
    categorical = []
    bags = []
    for f in spec.context_features:
        if f.vocab and f.name in rows:
            if f.kind == "varlen":
                bags.append(_bag_of_words(rows[f.name], spec.vocabularies[f.vocab].path, f.name))
                continue
            columns[f.name] = _codes(rows[f.name], spec.vocabularies[f.vocab].path)
            categorical.append(f.name)
    if spec.sequence_length:
        behaviour = rows["hist_behavior"]
        real = behaviour != b""
        click_like = np.isin(behaviour, CLICK_LIKE)
        buy = behaviour == b"buy"
        same_category = (rows["hist_category"] == rows["category"][:, None]) & real
        same_item = (rows["hist_item_id"] == rows["item_id"][:, None]) & real
        gaps = rows["hist_time_gap"].astype(np.float64)
        length = real.sum(axis=1)
        columns["hist_length"] = length
        for k, label in ((5, "5"), (15, "15"), (behaviour.shape[1], "all")):
            columns[f"same_category_clicks_{label}"] = _last_k(same_category & click_like, k)
            columns[f"same_category_events_{label}"] = _last_k(same_category, k)
            columns[f"clicks_{label}"] = _last_k(click_like, k)
        columns["same_item_events"] = same_item.sum(axis=1)
        columns["same_item_clicks"] = (same_item & click_like).sum(axis=1)
        columns["buys"] = buy.sum(axis=1)
        columns["gap_last_event"] = _gap_of_last(gaps, real)
        columns["gap_last_same_category"] = _gap_of_last(gaps, same_category)
        columns["gap_last_same_category_click"] = _gap_of_last(gaps, same_category & click_like)
        columns["gap_last_click"] = _gap_of_last(gaps, click_like)
        columns["gap_last_buy"] = _gap_of_last(gaps, buy)
        columns["click_share"] = click_like.sum(axis=1) / np.maximum(length, 1)
    names = list(columns)
    dense = np.stack([columns[n].astype(np.float64) for n in names], axis=1)
    if not bags:
        return dense, names, categorical
    from scipy import sparse  # noqa: PLC0415

    x = sparse.hstack([sparse.csr_matrix(dense)] + [b for b, _ in bags], format="csr")
    return x, names + [n for _, bag_names in bags for n in bag_names], categorical


def fit_booster(train_x, train_y, valid_x, valid_y, names, categorical, seed: int,
                rounds: int = 2000, patience: int = 50):
    """LightGBM with early stopping on the validation logloss; returns the booster."""
    import lightgbm as lgb  # noqa: PLC0415

    params = dict(LGB_PARAMS, seed=seed, bagging_seed=seed, feature_fraction_seed=seed)
    train = lgb.Dataset(train_x, train_y, feature_name=names, categorical_feature=categorical,
                        free_raw_data=False)
    valid = lgb.Dataset(valid_x, valid_y, reference=train)
    return lgb.train(params, train, num_boost_round=rounds, valid_sets=[valid],
                     callbacks=[lgb.early_stopping(patience, verbose=False)])


def run_peer(data_dir, seeds=(0,), oracle_logs=None, exclude=(), train_fraction: float = 1.0) -> dict:
    """Fit click and conversion boosters per seed; score the test split (and the oracle, with the
    world's ceilings, on its rows). Returns per-seed scores and the compare-table row.

    ``train_fraction`` < 1 trains on that share of the train *users* (a learning curve)."""
    from tfrs_models.cascade.compare import _flatten, _mean_std  # noqa: PLC0415
    from tfrs_models.cascade.data import load_dataset  # noqa: PLC0415
    from tfrs_models.cascade.oracle import oracle_scores  # noqa: PLC0415
    from tfrs_models.cascade.train import score  # noqa: PLC0415

    spec = load_dataset(data_dir)
    splits = {s: read_split(spec, s) for s in ("train", "valid", "test")}
    if train_fraction < 1.0:
        users = np.unique(splits["train"]["user_id"])
        kept = np.random.default_rng(0).permutation(users)[: max(1, int(train_fraction * users.size))]
        rows = np.isin(splits["train"]["user_id"], kept)
        splits["train"] = {k: v[rows] for k, v in splits["train"].items()}
    matrices = {s: peer_features(rows, spec) for s, rows in splits.items()}
    names, categorical = matrices["train"][1], matrices["train"][2]
    # A bag's name (``title_tokens``) leaves out all of its columns (``title_tokens__<token>``).
    keep = [i for i, n in enumerate(names) if n not in set(exclude) and n.split("__")[0] not in set(exclude)]
    names = [names[i] for i in keep]
    categorical = [c for c in categorical if c in names]
    x = {s: m[0][:, keep] for s, m in matrices.items()}
    per_seed, details = [], []
    for seed in seeds:
        pred = {k: splits["test"][k] for k in ("click", "conversion", "user_id", "ts")}
        detail = {"seed": seed}
        for task, label in (("p_click", "click"), ("p_conversion", "conversion")):
            booster = fit_booster(x["train"], splits["train"][label], x["valid"],
                                  splits["valid"][label], names, categorical, seed)
            pred[task] = booster.predict(x["test"], num_iteration=booster.best_iteration)
            importance = booster.feature_importance("gain")
            detail[f"{label}_best_iteration"] = booster.best_iteration
            detail[f"{label}_top_features"] = [names[i] for i in np.argsort(-importance)[:8]]
        detail["test"] = score(pred)
        per_seed.append(_flatten(detail["test"]))
        details.append(detail)
    result = {"data_dir": str(data_dir), "seeds": list(seeds), "features": names,
              "rows": {s: int(len(r["click"])) for s, r in splits.items()}, "per_seed": details,
              "row": {"model": "lightgbm (peer)", "encoder": "-",
                      "metrics": {k: _mean_std([s[k] for s in per_seed]) for k in per_seed[0]}}}
    if oracle_logs:
        result["oracle"] = oracle_scores(oracle_logs, pred)
    return result


def add_to_compare(result: dict, compare_dir) -> Path:
    """Put the peer's row into ``compare_dir/compare.json`` (replacing an earlier peer row) and
    rewrite ``compare.md``; refuses a table built on other data."""
    from adpush_core.errors import UserError  # noqa: PLC0415
    from tfrs_models.cascade.compare import write_tables  # noqa: PLC0415

    path = Path(compare_dir) / "compare.json"
    table = json.loads(path.read_text())
    if Path(table["data_dir"]).resolve() != Path(result["data_dir"]).resolve():
        raise UserError(f"{path} was built on {table['data_dir']}, the peer on {result['data_dir']}")
    if table.get("test_rows") not in (None, result["rows"]["test"]):
        raise UserError(f"{path} scored {table['test_rows']} test rows, the peer {result['rows']['test']}")
    row = dict(result["row"], seeds=result["seeds"])
    table["rows"] = [r for r in table["rows"] if r["model"] != row["model"]] + [row]
    write_tables(table, compare_dir)
    return path


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="build-data output (spec.json)")
    parser.add_argument("--oracle", default=None, help="simulate-logs output (world data)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (bagging, columns)")
    parser.add_argument("--exclude", default="", help="comma list of peer features to leave out")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train on this share of the train users (learning curve)")
    parser.add_argument("--compare", default=None,
                        help="an `adpush compare` output directory: add the peer's row to its table")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")


def run(args) -> int:
    import tfrs_models  # noqa: F401, PLC0415  (TF/Keras set-up before TensorFlow is imported)

    start = time.time()
    result = run_peer(args.data, tuple(range(args.seed, args.seed + args.seeds)), args.oracle,
                      exclude=tuple(e for e in args.exclude.split(",") if e),
                      train_fraction=args.train_fraction)
    result["seconds"] = round(time.time() - start, 1)
    m = result["row"]["metrics"]
    print(f"  peer: click AUC {m['click_auc']['mean']:.4f} ± {m['click_auc']['std']:.4f}, "
          f"conversion AUC {m['conversion_auc']['mean']:.4f} ± {m['conversion_auc']['std']:.4f}, "
          f"CVR AUC (clicked) {m['cvr_auc_clicked']['mean']:.4f}  (seeds {result['seeds']})")
    for who in ("ceiling_item", "ceiling_context", "oracle"):
        s = result.get("oracle", {}).get(who)
        if s:
            print(f"{who:>16}: click AUC {s['click']['auc']:.4f}, conversion AUC "
                  f"{s['conversion']['auc']:.4f} (same {result['oracle']['joined_rows']:,} rows)")
    iterations = [(d["click_best_iteration"], d["conversion_best_iteration"]) for d in result["per_seed"]]
    print(f"rows {result['rows']}; best iterations (click, conversion) {iterations}; "
          f"top click features {result['per_seed'][0]['click_top_features'][:5]}; {result['seconds']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    if args.compare:
        print(f"added the peer's row to {add_to_compare(result, args.compare)}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
