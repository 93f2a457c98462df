"""Target-aware history inputs of SharedEmbeddings, checked against hand-computed values:
match channels per event, the history summary (counts and recencies) and field interactions."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tfrs_models.cascade  # noqa: F401  (selects Keras 2 before TensorFlow)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Vocabularies: items 10..13, categories a..c, behaviours pv/cart/fav/buy; L = 6."""
    root = tmp_path_factory.mktemp("vocab")
    vocabs = {}
    for name, tokens in (("item_id", ["10", "11", "12", "13"]), ("category", ["a", "b", "c"]),
                         ("behavior", ["pv", "cart", "fav", "buy"]), ("user_id", ["u1", "u2"])):
        (root / f"{name}.txt").write_text("".join(t + "\n" for t in tokens))
        vocabs[name] = {"path": str(root / f"{name}.txt"), "size": len(tokens), "num_oov_buckets": 1}

    def feature(name, vocab, group, part="context", dtype="string"):
        return {"name": name, "dtype": dtype, "vocab": vocab, "group": group, "part": part,
                "max_length": 6 if part == "sequence" else None,
                "kind": "varlen" if part == "sequence" else "scalar"}

    features = [feature("user_id", "user_id", "user"), feature("item_id", "item_id", "item"),
                feature("category", "category", "item"),
                feature("hist_item_id", "item_id", "history", "sequence"),
                feature("hist_category", "category", "history", "sequence"),
                feature("hist_behavior", "behavior", "history", "sequence"),
                feature("hist_time_gap", None, "history", "sequence", dtype="float32")]
    return {"features": features, "vocabularies": vocabs, "sequence_length": 6,
            "float_stats": {"hist_time_gap": {"mean": 5.0, "std": 2.0}}, "label_rates": {}}


def _batch():
    import tensorflow as tf

    # One example, left-padded (oldest first): two padding slots, then 4 events.
    return {
        "user_id": tf.constant(["u1"]), "item_id": tf.constant(["12"]), "category": tf.constant(["b"]),
        "hist_item_id": tf.constant([["", "", "11", "12", "99", "12"]]),
        "hist_category": tf.constant([["", "", "b", "b", "a", "b"]]),
        "hist_behavior": tf.constant([["", "", "cart", "pv", "pv", "fav"]]),
        "hist_time_gap": tf.constant([[0.0, 0.0, 9.0, 7.0, 5.0, 3.0]]),
    }


def test_match_channels_mark_events_equal_to_the_candidate(layout):
    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings(layout, embedding_dim=2, history_summary=False)
    assert layer.match_pairs == [("hist_item_id", "item_id"), ("hist_category", "category")]
    out = layer(_batch())
    # per event: 3 embeddings of 2 + the standardised gap + 2 match channels = 9 channels
    assert out["sequence"].shape == (1, 6, 9)
    np.testing.assert_array_equal(out["sequence"].numpy()[0, :, -2], [0, 0, 0, 1, 0, 1])  # item 12
    np.testing.assert_array_equal(out["sequence"].numpy()[0, :, -1], [0, 0, 1, 1, 0, 1])  # cat. b
    np.testing.assert_allclose(out["sequence"].numpy()[0, 2:, 6], [2.0, 1.0, 0.0, -1.0])  # (g-5)/2
    off = SharedEmbeddings(layout, embedding_dim=2, history_matches=False, history_summary=False)
    assert off(_batch())["sequence"].shape == (1, 6, 7)


def test_history_summary_counts_and_recencies_by_hand(layout):
    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings(layout, embedding_dim=2, history_decay=False)
    layer.SUMMARY_RECENT = 2
    # kinds = OOV + 4 behaviours = 5; scopes any/item/category = 3; (2 windows + recency) = 3
    assert layer.summary_size == 5 * 3 * 3
    # layout: per scope (any, same item, same category): all-history counts, last-2 counts,
    # recencies, each over the 5 kinds (OOV, pv, cart, fav, buy)
    summary = layer(_batch())["dense"].numpy()[0].reshape(3, 3, 5)   # [scope, stat, kind]
    pv, cart, fav, buy = 1, 2, 3, 4
    log1p = math.log1p
    # any scope: pv twice (one in the last 2 events), cart once (old), fav once (latest)
    np.testing.assert_allclose(summary[0, :, pv], [log1p(2), log1p(1), (5.0 - 5) / 2])
    np.testing.assert_allclose(summary[0, :, cart], [log1p(1), 0.0, (9.0 - 5) / 2])
    np.testing.assert_allclose(summary[0, :, fav], [log1p(1), log1p(1), (3.0 - 5) / 2])
    # same item (12): the pv at gap 7 and the fav at gap 3
    np.testing.assert_allclose(summary[1, :, pv], [log1p(1), 0.0, (7.0 - 5) / 2])
    np.testing.assert_allclose(summary[1, :, fav], [log1p(1), log1p(1), -1.0])
    np.testing.assert_allclose(summary[1, :, cart], [0.0, 0.0, layer.SUMMARY_NONE])
    # same category (b): cart (gap 9), pv (gap 7), fav (gap 3); the pv of category a is out
    np.testing.assert_allclose(summary[2, :, cart], [log1p(1), 0.0, 2.0])
    np.testing.assert_allclose(summary[2, :, pv], [log1p(1), 0.0, 1.0])
    # no buy anywhere, no OOV behaviour
    np.testing.assert_allclose(summary[:, :, buy], [[0.0, 0.0, layer.SUMMARY_NONE]] * 3)
    np.testing.assert_allclose(summary[:, :, 0], [[0.0, 0.0, layer.SUMMARY_NONE]] * 3)


def test_decayed_history_by_hand_with_learnt_half_lives(layout):
    """Σ hit · 2^(−age/h) per behaviour × scope × {since the 2nd latest view, all}; age in hours
    from the raw log1p-seconds gap; h = exp(θ) per channel, trainable."""
    import tensorflow as tf

    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings(layout, embedding_dim=2)
    layer.SUMMARY_RECENT = 2
    assert layer.decay_size == 5 * 3 * 2 and layer.summary_size == 5 * 3 * 3 + 30
    layer(_batch())
    np.testing.assert_allclose(layer.half_lives_hours(), [layer.DECAY_INIT_HOURS] * 30, rtol=1e-6)
    half_lives = np.arange(1, 31, dtype=np.float32)          # a different half-life per channel
    layer.log_half_life.assign(np.log(half_lives))
    decayed = layer(_batch())["dense"].numpy()[0, -30:].reshape(3, 2, 5)  # [scope, window, kind]
    h = half_lives.reshape(3, 2, 5)
    pv, cart, fav = 1, 2, 3
    age = {g: math.expm1(g) / 3600.0 for g in (9.0, 7.0, 5.0, 3.0)}

    def d(g, s, w, k):
        return 2.0 ** (-age[g] / h[s, w, k])

    # Events (oldest first): cart 11/b (gap 9), pv 12/b (7), pv 99/a (5), fav 12/b (3). With
    # 2 recent views the recent window is the pv at 7 and everything after it (not the cart).
    np.testing.assert_allclose(decayed[0, 0, pv], d(7.0, 0, 0, pv) + d(5.0, 0, 0, pv), rtol=1e-5)
    np.testing.assert_allclose(decayed[0, 0, cart], 0.0)
    np.testing.assert_allclose(decayed[0, 1, cart], d(9.0, 0, 1, cart), rtol=1e-5)
    np.testing.assert_allclose(decayed[0, 0, fav], d(3.0, 0, 0, fav), rtol=1e-5)
    np.testing.assert_allclose(decayed[1, 1, pv], d(7.0, 1, 1, pv), rtol=1e-5)       # item 12
    np.testing.assert_allclose(decayed[1, 0, fav], d(3.0, 1, 0, fav), rtol=1e-5)
    np.testing.assert_allclose(decayed[2, 1, cart], d(9.0, 2, 1, cart), rtol=1e-5)   # category b
    np.testing.assert_allclose(decayed[2, 0, pv], d(7.0, 2, 0, pv), rtol=1e-5)
    np.testing.assert_allclose(decayed[:, :, 4], 0.0)                                 # no buy
    # The half-lives learn: a loss on one channel moves its θ (and only the θ it reads).
    with tf.GradientTape() as tape:
        loss = layer(_batch())["dense"][0, -30 + 5 + cart]     # scope any, window all, cart
    grad = tape.gradient(loss, layer.log_half_life).numpy()
    assert grad[5 + cart] > 0 and np.count_nonzero(grad) == 1
    off = SharedEmbeddings(layout, embedding_dim=2, history_decay=False)
    assert off.decay_size == 0 and off.summary_size == 45


def test_field_interactions_are_pairwise_inner_products(layout):
    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings(layout, embedding_dim=3, history_summary=False, field_interactions=True)
    out = layer(_batch())
    fields = out["fields"].numpy()[0]                                   # user, item, category
    expected = [fields[0] @ fields[1], fields[0] @ fields[2], fields[1] @ fields[2]]
    np.testing.assert_allclose(out["dense"].numpy()[0], expected, rtol=1e-5)


def test_embedding_l2_counts_only_looked_up_rows_of_a_training_batch(layout):
    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings(layout, embedding_dim=2, embedding_l2=0.5)
    batch = _batch()
    layer(batch, training=False)
    assert layer.losses == []
    layer(batch, training=True)
    tables = {v.name.split("/")[-2]: v.numpy() for v in layer.weights if "embedding" in v.name}
    ids = {"user_id": [1 + 1], "item_id": [3 + 1], "category": [2 + 1]}  # mask 0, OOV 1
    total = sum(np.sum(tables[f"embedding_{name}"][i] ** 2) for name, i in ids.items())
    hist = {"item_id": [2 + 1, 3 + 1, 1, 3 + 1], "category": [2 + 1, 2 + 1, 1 + 1, 2 + 1],
            "behavior": [2 + 1, 1 + 1, 1 + 1, 3 + 1]}  # 99 is OOV (1)
    total += sum(np.sum(tables[f"embedding_{name}"][i] ** 2) for name, i in hist.items())
    assert float(sum(layer.losses)) == pytest.approx(0.5 * total, rel=1e-5)


def test_embedding_prior_charges_every_table_row_once_per_step(layout):
    """embedding_prior λ adds λ·Σ‖E‖²/N_train over every row of every table (looked up or not)
    to a training call, and nothing at inference."""
    from tfrs_models.cascade.features import SharedEmbeddings

    layer = SharedEmbeddings({**layout, "train_rows": 200}, embedding_dim=2, embedding_prior=4.0)
    layer(_batch(), training=False)
    assert layer.losses == []
    layer(_batch(), training=True)
    tables = [v.numpy() for v in layer.weights if "embedding_" in v.name]
    assert len(tables) == 4  # user_id, item_id, category, behavior
    expected = 4.0 / 200 * sum(float(np.sum(t ** 2)) for t in tables)
    assert float(sum(layer.losses)) == pytest.approx(expected, rel=1e-5)


def test_decayed_half_life_is_learnt_from_a_planted_time_decay(layout):
    """Clicks planted as σ(−1.5 + 2·Σ_{cart of the candidate's category} 2^(−age/3 h)), ages
    0–48 h: a logistic layer on the decayed channels, started at h = 24 h, learns the planted
    channel's half-life (3 h) by gradient descent, and that channel gets the largest weight."""
    import tensorflow as tf

    from tfrs_models.cascade.features import SharedEmbeddings

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, length = 2048, 6
    behaviours = rng.choice(["pv", "cart", "fav"], size=(n, length))
    categories = rng.choice(["a", "b", "c"], size=(n, length))
    candidate = rng.choice(["a", "b", "c"], size=n)
    age_hours = rng.uniform(0.0, 48.0, size=(n, length))
    hit = (behaviours == "cart") & (categories == candidate[:, None])
    logit = -1.5 + 2.0 * (hit * 2.0 ** (-age_hours / 3.0)).sum(axis=1)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    batch = {"user_id": tf.constant(["u1"] * n), "item_id": tf.constant(["10"] * n),
             "category": tf.constant(candidate), "hist_item_id": tf.constant([["11"] * length] * n),
             "hist_category": tf.constant(categories), "hist_behavior": tf.constant(behaviours),
             "hist_time_gap": tf.constant(np.log1p(age_hours * 3600.0), tf.float32)}
    layer = SharedEmbeddings(layout, embedding_dim=2)
    layer.SUMMARY_RECENT = 2        # the planted term reads every event: the "all" window
    head = tf.keras.layers.Dense(1)
    optimizer = tf.keras.optimizers.Adam(0.05)
    for _ in range(200):
        with tf.GradientTape() as tape:
            decayed = layer(batch)["dense"][:, -layer.decay_size:]
            loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(
                labels[:, None], head(decayed), from_logits=True))
        variables = [layer.log_half_life] + head.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    planted = 2 * 10 + 1 * 5 + 2            # scope category (stride 10), window all (5), cart
    half_lives = layer.half_lives_hours()
    assert 2.0 < half_lives[planted] < 4.5, half_lives[planted]
    weights = head.kernel.numpy()[:, 0]
    assert weights[planted] > 1.0 and weights[planted] == weights.max(), weights


def test_title_tokens_are_mean_pooled_over_real_tokens(layout, tmp_path):
    """The candidate's ``title_tokens`` (a token bag of the item group) enter ``fields`` and
    ``candidate`` as the mean of its real tokens' embeddings; padding and an empty title give
    zeros; an OOV token counts as a token (its OOV row)."""
    import tensorflow as tf

    from tfrs_models.cascade.features import SharedEmbeddings

    (tmp_path / "title_token.txt").write_text("red\nshoe\nfast\n")
    with_title = dict(layout, vocabularies=dict(
        layout["vocabularies"], title_token={"path": str(tmp_path / "title_token.txt"), "size": 3,
                                             "num_oov_buckets": 1}))
    with_title["features"] = layout["features"][:3] + [
        {"name": "title_tokens", "dtype": "string", "vocab": "title_token", "group": "item",
         "part": "context", "max_length": 4, "kind": "varlen"}] + layout["features"][3:]
    layer = SharedEmbeddings(with_title, embedding_dim=2, history_summary=False)
    assert layer.candidate_names == ["item_id", "category", "title_tokens"]
    batch = dict(_batch())
    batch = {k: tf.concat([v, v], axis=0) for k, v in batch.items()}
    batch["title_tokens"] = tf.constant([["red", "fast", "zzz", ""], ["", "", "", ""]])
    out = layer(batch)
    table = next(v.numpy() for v in layer.weights if "embedding_title_token" in v.name)
    # rows: 0 padding, 1 OOV, then red, shoe, fast
    expected = (table[2] + table[4] + table[1]) / 3
    assert out["fields"].shape == (2, 4, 2)
    np.testing.assert_allclose(out["fields"].numpy()[0, 3], expected, rtol=1e-5)
    np.testing.assert_array_equal(out["fields"].numpy()[1, 3], [0.0, 0.0])
    np.testing.assert_allclose(out["candidate"].numpy()[0, 4:], expected, rtol=1e-5)
