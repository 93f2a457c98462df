import math

import numpy as np
import pytest

from tfrs_models import metrics


def test_auc_hand_value_with_tie():
    # pos scores {0.9, 0.4}, neg {0.4, 0.1}: pairs (0.9>0.4)(0.9>0.1)(0.4=0.4 → ½)(0.4>0.1) = 3.5/4
    assert metrics.auc([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert math.isnan(metrics.auc([1, 1], [0.2, 0.3]))


def test_gauc_weights_by_impressions_and_skips_one_class_users():
    users = ["a", "a", "a", "b", "b", "c", "c"]
    labels = [1, 0, 0, 1, 0, 1, 1]
    scores = [0.9, 0.5, 0.95, 0.2, 0.8, 0.1, 0.3]
    # a: pos 0.9 vs neg {0.5, 0.95} → 1/2 over 3 imps; b: 0.2 < 0.8 → 0 over 2; c skipped.
    assert metrics.gauc(labels, scores, users) == pytest.approx((0.5 * 3 + 0.0 * 2) / 5)


def test_logloss_and_threshold_metrics_hand_values():
    assert metrics.logloss([1, 0], [1.0, 0.3]) == pytest.approx(-(math.log(1 - 1e-7) + math.log(0.7)) / 2)
    m = metrics.threshold_metrics([1, 1, 0, 0, 0], [0.6, 0.4, 0.5, 0.1, 0.2])
    assert m == {"accuracy": pytest.approx(3 / 5), "recall": 0.5, "specificity": pytest.approx(2 / 3)}


def test_precision_recall_coverage_at_k_hand_values():
    users = ["u", "u", "u", "u", "v", "v"]
    items = ["k1", "k2", "k3", "k1", "k2", "k4"]
    labels = [0, 1, 0, 1, 0, 0]  # u: k1 (one of two imps clicked) and k2 relevant; v none
    scores = [0.9, 0.5, 0.7, 0.1, 0.6, 0.2]  # u: k1 mean 0.5, k2 0.5, k3 0.7 → k3, k1, k2
    out = metrics.ranking_at_k(users, items, labels, scores, ks=(1, 2, 3))
    assert out["precision"] == {1: 0.0, 2: 0.5, 3: pytest.approx(2 / 3)}
    assert out["recall"] == {1: 0.0, 2: 0.5, 3: 1.0}
    # top-1: u→k3, v→k2; top-2 adds k1, k4; 4 distinct candidates in all.
    assert out["coverage"] == {1: 0.5, 2: 1.0, 3: 1.0}


def test_table3_segments():
    seg = metrics.table3_segments(["a", "b"], {"a": 6, "b": 7}, {"a": 22})
    assert list(seg) == ["main<=6,aux>21", "main>6,aux<=21"]
    assert metrics.clicks_per_user(["a", "a", "b"], [1, 1, 0]) == {"a": 2, "b": 0}
    assert np.isnan(metrics.all_metrics([1, 1], [0.5, 0.6], ["a", "a"], ["x", "y"])["auc"])


def _naive_gauc(labels, scores, users):
    total = weight = 0.0
    for u in sorted(set(users)):
        idx = [i for i, v in enumerate(users) if v == u]
        value = metrics.auc(np.asarray(labels)[idx], np.asarray(scores)[idx])
        if not np.isnan(value):
            total, weight = total + value * len(idx), weight + len(idx)
    return total / weight if weight else float("nan")


def _naive_ranking(users, items, labels, scores, k):
    per_user = {}
    for u, i, y, s in zip(users, items, labels, scores):
        cell = per_user.setdefault(u, {}).setdefault(i, [0.0, 0, False])
        cell[0], cell[1], cell[2] = cell[0] + s, cell[1] + 1, cell[2] or bool(y)
    precision, recall, covered = [], [], set()
    for cands in per_user.values():
        rows = sorted(((-(v[0] / v[1]), str(i), v[2]) for i, v in cands.items()))
        covered.update(i for _, i, _ in rows[:k])
        n_rel = sum(r for _, _, r in rows)
        if n_rel:
            hits = sum(r for _, _, r in rows[:k])
            precision.append(hits / min(k, len(rows)))
            recall.append(hits / n_rel)
    n_items = len({str(i) for c in per_user.values() for i in c})
    return np.mean(precision), np.mean(recall), len(covered) / n_items


def test_vectorised_gauc_and_ranking_match_a_per_user_loop_with_ties():
    rng = np.random.default_rng(3)
    n = 2000
    users = rng.integers(0, 150, n).astype(str)
    items = np.array([f"sp_{i}" for i in rng.integers(0, 12, n)])
    labels = rng.random(n) < 0.25
    scores = np.round(rng.random(n), 1)  # many ties
    assert metrics.gauc(labels, scores, users) == pytest.approx(
        _naive_gauc(labels, scores, users), abs=1e-12)
    out = metrics.ranking_at_k(users, items, labels, scores, ks=(1, 3, 10))
    for k in (1, 3, 10):
        p, r, c = _naive_ranking(users, items, labels, scores, k)
        assert (out["precision"][k], out["recall"][k], out["coverage"][k]) == pytest.approx(
            (p, r, c), abs=1e-12)


def test_paired_auc_bootstrap():
    from tfrs_models.metrics import PairedAucBootstrap, auc

    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(300), 10)
    latent = rng.normal(size=300)[users]
    labels = (rng.random(users.size) < 1 / (1 + np.exp(-(latent - 1)))).astype(int)
    good = latent + rng.normal(scale=0.5, size=users.size)
    noisy = latent + rng.normal(scale=2.0, size=users.size)
    ties = np.round(good, 1)  # many ties
    # unit weights give the rank AUC, ties included
    for scores in (good, noisy, ties):
        assert PairedAucBootstrap.weighted_auc(labels, scores, np.ones(users.size)) == pytest.approx(
            auc(labels, scores), abs=1e-12)
    # weight 2 on a row = the row twice
    w = np.ones(users.size)
    w[:50] = 2
    doubled = np.concatenate([np.arange(users.size), np.arange(50)])
    assert PairedAucBootstrap.weighted_auc(labels, good, w) == pytest.approx(
        auc(labels[doubled], good[doubled]), abs=1e-12)
    boot = PairedAucBootstrap(labels, users, reps=300, seed=1)
    assert boot.user_weights.sum(axis=1).tolist() == [300] * 300
    same = boot.difference(good, good)
    assert (same["delta"], same["low"], same["high"], same["p"]) == (0.0, 0.0, 0.0, 1.0)
    better = boot.difference(good, noisy)
    assert better["delta"] == pytest.approx(auc(labels, good) - auc(labels, noisy))
    assert 0 < better["low"] < better["delta"] < better["high"] and better["p"] < 0.01
    assert better["high"] - better["low"] > 0.01  # 300 users: a real interval, not a point
