"""Is the world's local-context click term expressible from the history, and what does a
well-specified learner reach on the demo rows?

Prints, on the test rows (choices on validation only):

- the AUC of ``logit(p_click | item ceiling) + b · n`` with ``n`` the number of click-like
  actions (cart/fav) in the candidate's category among the events since the 5th latest view
  (``features.SharedEmbeddings``' recent window), for ``b`` around the world's
  ``context_click_boost``, beside the ``context`` ceiling: equal means ``n`` carries the term;
- the same with ``n`` time-decayed (``Σ 2^(−age/h)``) for a few half-lives ``h``;
- logistic regression on the item id (one-hot, OOV bucket) + ``n``, ``C`` chosen on the
  validation AUC: the item and context terms in exactly the world's functional form, learnt
  from the train rows — what any model reading item ids and the history can expect.

    .venv/bin/python bench/cascade_well_specified.py --data RUN/data --oracle RUN/logs [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RECENT_VIEWS = 5


def recent_same_category_clicks(rows: dict, half_life_hours: float | None = None) -> np.ndarray:
    beh, cat = rows["hist_behavior"], rows["hist_category"]
    view = beh == b"pv"
    views_after = np.cumsum(view[:, ::-1], axis=1)[:, ::-1] - view
    hit = ((beh == b"cart") | (beh == b"fav")) & (cat == rows["category"][:, None]) \
        & (beh != b"") & (views_after < RECENT_VIEWS)
    if half_life_hours is None:
        return hit.sum(axis=1).astype(np.float64)
    age = np.expm1(rows["hist_time_gap"].astype(np.float64)) / 3600.0
    return (hit * 0.5 ** (age / half_life_hours)).sum(axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--oracle", required=True, help="simulate-logs output")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import scipy.sparse as sp  # noqa: PLC0415
    from peers_cascade import read_split  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    from tfrs_models.cascade.data import load_dataset  # noqa: PLC0415
    from tfrs_models.cascade.oracle import oracle_predictions  # noqa: PLC0415

    spec = load_dataset(args.data)
    rows = {s: read_split(spec, s) for s in ("train", "valid", "test")}
    test = rows["test"]
    keys = {k: test[k] for k in ("user_id", "ts")}
    item = oracle_predictions(args.oracle, keys, "ceiling_item")["p_click"]
    context = oracle_predictions(args.oracle, keys, "ceiling_context")["p_click"]
    logit = np.log(item / (1.0 - item))
    print(f"test rows {len(test['click']):,}: ceiling item {roc_auc_score(test['click'], item):.4f}, "
          f"context {roc_auc_score(test['click'], context):.4f}")
    for h in (None, 6.0, 12.0, 24.0):
        n = recent_same_category_clicks(test, h)
        label = "count" if h is None else f"decayed h={h:g} h"
        aucs = [roc_auc_score(test["click"], logit + b * n) for b in (0.4, 0.8, 1.2)]
        print(f"  item ceiling + b·{label} (b 0.4/0.8/1.2): " + " / ".join(f"{a:.4f}" for a in aucs)
              + f"; {label} alone {roc_auc_score(test['click'], n):.4f}")
    items = {v: i for i, v in enumerate(np.unique(rows["train"]["item_id"]))}

    def design(r):
        idx = np.array([items.get(v, len(items)) for v in r["item_id"]])
        one_hot = sp.csr_matrix((np.ones(idx.size), (np.arange(idx.size), idx)),
                                shape=(idx.size, len(items) + 1))
        return sp.hstack([one_hot, sp.csr_matrix(recent_same_category_clicks(r)[:, None])]).tocsr()

    x = {s: design(r) for s, r in rows.items()}
    best = None
    for c in (0.1, 0.3, 1.0):
        model = LogisticRegression(C=c, max_iter=2000, random_state=args.seed)
        model.fit(x["train"], rows["train"]["click"])
        valid = roc_auc_score(rows["valid"]["click"], model.decision_function(x["valid"]))
        print(f"  logistic regression item one-hot + count, C={c:g}: valid AUC {valid:.4f}")
        if best is None or valid > best[0]:
            best = (valid, c, model)
    test_auc = roc_auc_score(test["click"], best[2].decision_function(x["test"]))
    print(f"well-specified learner (C={best[1]:g} on validation): test click AUC {test_auc:.4f}, "
          f"count coefficient {best[2].coef_[0, -1]:.3f}; {len(items):,} train items, "
          f"{len(rows['train']['click']):,} train rows")
    return 0


if __name__ == "__main__":
    import tfrs_models.cascade  # noqa: F401  (selects Keras 2 before TensorFlow)

    raise SystemExit(main())
