"""Offline metrics of the selling-point family, in numpy/scipy (no TensorFlow).

All functions take 1-D arrays of equal length. Degenerate inputs (one class only) give NaN
rather than a made-up number.
"""
from __future__ import annotations

import collections

import numpy as np
from scipy.stats import rankdata

KS = tuple(range(1, 11))


def auc(labels, scores) -> float:
    """ROC AUC by the Mann–Whitney rank statistic (ties share their average rank)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(labels, scores, users) -> float:
    """Per-user AUC weighted by the user's impressions; users with one class are skipped."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    users = np.asarray(users)
    total, weight = 0.0, 0
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    bounds = np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1
    for idx in np.split(order, bounds):
        value = auc(labels[idx], scores[idx])
        if not np.isnan(value):
            total += value * idx.size
            weight += idx.size
    return float(total / weight) if weight else float("nan")


def logloss(labels, probs, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1-eps]."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def threshold_metrics(labels, probs, threshold: float = 0.5) -> dict:
    """Accuracy, recall (TP/(TP+FN)) and specificity (TN/(TN+FP)) with ``p >= threshold``."""
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(probs) >= threshold
    tp, tn = int(np.sum(pred & y)), int(np.sum(~pred & ~y))
    fp, fn = int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    nan = float("nan")
    return {"accuracy": (tp + tn) / y.size if y.size else nan,
            "recall": tp / (tp + fn) if tp + fn else nan,
            "specificity": tn / (tn + fp) if tn + fp else nan}


def ranking_at_k(users, items, labels, scores, ks=KS) -> dict:
    """Precision@K, recall@K and coverage@K for ranking each user's candidate SP keywords.

    A user's candidates are the distinct keywords shown to them; a keyword is relevant if any of
    its impressions was clicked; its score is the mean score of its impressions. Candidates are
    ranked by score (ties by keyword). For each K:
    ``precision@K = |top-K ∩ relevant| / min(K, #candidates)``,
    ``recall@K = |top-K ∩ relevant| / |relevant|``, both averaged over users with ≥ 1 relevant
    keyword; ``coverage@K`` = distinct keywords in anybody's top-K / distinct candidates.
    """
    per_user: dict = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0, 0, False]))
    for u, i, y, s in zip(users, items, labels, scores):
        cell = per_user[u][i]
        cell[0] += float(s)
        cell[1] += 1
        cell[2] = cell[2] or bool(y)
    all_items = {i for cands in per_user.values() for i in cands}
    ranked = {}
    for u, cands in per_user.items():
        ranked[u] = sorted(((-(v[0] / v[1]), i, v[2]) for i, v in cands.items()),
                           key=lambda t: (t[0], str(t[1])))
    out = {"precision": {}, "recall": {}, "coverage": {}}
    for k in ks:
        precisions, recalls, covered = [], [], set()
        for u, rows in ranked.items():
            top = rows[:k]
            covered.update(i for _, i, _ in top)
            n_rel = sum(r for _, _, r in rows)
            if n_rel == 0:
                continue
            hits = sum(r for _, _, r in top)
            precisions.append(hits / min(k, len(rows)))
            recalls.append(hits / n_rel)
        out["precision"][k] = float(np.mean(precisions)) if precisions else float("nan")
        out["recall"][k] = float(np.mean(recalls)) if recalls else float("nan")
        out["coverage"][k] = len(covered) / len(all_items) if all_items else float("nan")
    return out


def all_metrics(labels, probs, users, items, ks=KS) -> dict:
    """Every figure of one scorer on one set of impressions."""
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    out = {"n": int(labels.size), "positives": int(np.sum(labels)),
           "auc": auc(labels, probs), "gauc": gauc(labels, probs, users),
           "logloss": logloss(labels, probs), **threshold_metrics(labels, probs)}
    out["at_k"] = ranking_at_k(users, items, labels, probs, ks)
    return out


def table3_segments(users, main_clicks: dict, aux_clicks: dict, main_cut: int = 6,
                    aux_cut: int = 21) -> np.ndarray:
    """001 Table 3 segment of each row's user, from per-user train-split click counts.

    Returns strings like ``"main<=6,aux>21"``.
    """
    out = []
    for u in users:
        m = "main<=%d" % main_cut if main_clicks.get(u, 0) <= main_cut else "main>%d" % main_cut
        a = "aux<=%d" % aux_cut if aux_clicks.get(u, 0) <= aux_cut else "aux>%d" % aux_cut
        out.append(f"{m},{a}")
    return np.asarray(out)


def clicks_per_user(users, labels) -> dict:
    """``{user: number of clicks}``."""
    counts: dict = collections.Counter()
    for u, y in zip(users, labels):
        counts[u] += int(y)
    return dict(counts)
