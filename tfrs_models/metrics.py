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


class PairedAucBootstrap:
    """Paired AUC differences with a bootstrap over users (clusters), for scorers of one set.

    Impressions of one user are correlated, so users, not rows, are resampled: replicate ``b``
    gives user ``u`` the weight ``m_bu`` ~ Multinomial(n_users, 1/n_users), every row of that
    user counts ``m_bu`` times, and each scorer's weighted Mann–Whitney AUC (ties half) is
    computed on the same weights, so the differences are paired.

        boot = PairedAucBootstrap(labels, users, reps=1000, seed=0)
        boot.difference(scores_b, scores_a)   # {"delta", "low", "high", "p"}
    """

    def __init__(self, labels, users, reps: int = 1000, seed: int = 0):
        self.labels = np.asarray(labels).astype(bool)
        groups = _group_ids(users)
        n_users = int(groups.max()) + 1 if groups.size else 0
        rng = np.random.default_rng(seed)
        # [reps, n_users] multiplicities, then per row
        self.user_weights = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=reps)
        self.groups = groups

    @staticmethod
    def weighted_auc(labels, scores, weights) -> float:
        labels = np.asarray(labels).astype(bool)
        values, tie = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        return PairedAucBootstrap._tied_auc(labels, tie.ravel(), values.size,
                                            np.asarray(weights, dtype=np.float64))

    @staticmethod
    def _tied_auc(labels, tie, n_values: int, weights) -> float:
        pos = np.bincount(tie, weights * labels, minlength=n_values)
        neg = np.bincount(tie, weights * ~labels, minlength=n_values)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos == 0 or total_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))

    def replicates(self, scores) -> np.ndarray:
        """The scorer's AUC under every replicate's weights (scores are ranked once)."""
        values, tie = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        tie = tie.ravel()
        return np.array([self._tied_auc(self.labels, tie, values.size, w[self.groups].astype(np.float64))
                         for w in self.user_weights])

    def difference(self, scores, reference, level: float = 0.95, reference_replicates=None) -> dict:
        """AUC(scores) - AUC(reference): point estimate, percentile interval and the two-sided
        bootstrap p-value (twice the share of replicates on the other side of zero).
        ``reference_replicates`` (``replicates(reference)``) saves recomputing them."""
        delta = auc(self.labels, scores) - auc(self.labels, reference)
        if reference_replicates is None:
            reference_replicates = self.replicates(reference)
        reps = self.replicates(scores) - reference_replicates
        tail = (1 - level) / 2
        low, high = np.quantile(reps, [tail, 1 - tail])
        p = 2 * min((reps <= 0).mean(), (reps >= 0).mean())
        return {"delta": float(delta), "low": float(low), "high": float(high), "p": float(min(1.0, p))}


def _group_ids(values) -> np.ndarray:
    """Dense integer ids of ``values`` (any dtype), in sorted order of the values."""
    return np.unique(np.asarray(values), return_inverse=True)[1].ravel()


def gauc(labels, scores, users) -> float:
    """Per-user AUC weighted by the user's impressions; users with one class are skipped.

    Vectorised: ranks within each user (ties share their average rank) from one lexsort.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.size == 0:
        return float("nan")
    user = _group_ids(users)
    order = np.lexsort((scores, user))
    u, sc, y = user[order], scores[order], labels[order]
    n = u.size
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_value = new_user | np.r_[True, sc[1:] != sc[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    tie_id = np.cumsum(new_value) - 1
    tie_first = np.flatnonzero(new_value)
    tie_last = np.r_[tie_first[1:], n] - 1
    # Average 1-based rank of each tie group within its user.
    rank = (tie_first + tie_last) / 2.0 + 1.0 - user_start[tie_first]
    ranks = rank[tie_id]
    n_users = int(u[-1]) + 1
    count = np.bincount(u, minlength=n_users).astype(np.float64)
    pos = np.bincount(u, weights=y, minlength=n_users)
    rank_pos = np.bincount(u, weights=np.where(y, ranks, 0.0), minlength=n_users)
    neg = count - pos
    both = (pos > 0) & (neg > 0)
    if not both.any():
        return float("nan")
    per_user = (rank_pos[both] - pos[both] * (pos[both] + 1) / 2) / (pos[both] * neg[both])
    return float(np.sum(per_user * count[both]) / np.sum(count[both]))


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
    out = {"precision": {}, "recall": {}, "coverage": {}}
    users = np.asarray(users)
    if users.size == 0:
        for k in ks:
            for key in out:
                out[key][k] = float("nan")
        return out
    user = _group_ids(users)
    # Ties between candidates are broken by the keyword's string, as sorted(str(item)).
    item_names, item = np.unique(np.asarray(items).astype(str), return_inverse=True)
    item = item.ravel()
    n_items = item_names.size
    cell = user.astype(np.int64) * n_items + item
    cells, cell_index = np.unique(cell, return_inverse=True)
    cell_index = cell_index.ravel()
    total = np.bincount(cell_index, weights=np.asarray(scores, dtype=np.float64))
    mean = total / np.bincount(cell_index)
    relevant = np.bincount(cell_index, weights=np.asarray(labels).astype(bool)) > 0
    cell_user, cell_item = cells // n_items, cells % n_items
    order = np.lexsort((cell_item, -mean, cell_user))
    cu, ci, rel = cell_user[order], cell_item[order], relevant[order]
    first = np.r_[True, cu[1:] != cu[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(cu.size), 0))
    position = np.arange(cu.size) - start
    n_users = int(cu.max()) + 1
    n_candidates = np.bincount(cu, minlength=n_users)
    n_relevant = np.bincount(cu, weights=rel, minlength=n_users)
    judged = n_relevant > 0
    for k in ks:
        top = position < k
        hits = np.bincount(cu, weights=rel & top, minlength=n_users)
        if judged.any():
            out["precision"][k] = float(np.mean(hits[judged] / np.minimum(k, n_candidates[judged])))
            out["recall"][k] = float(np.mean(hits[judged] / n_relevant[judged]))
        else:
            out["precision"][k] = out["recall"][k] = float("nan")
        out["coverage"][k] = np.unique(ci[top]).size / n_items
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
