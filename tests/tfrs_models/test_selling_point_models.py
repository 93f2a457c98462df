import math

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from harness import check_save_reload_roundtrip
from tfrs_models.input import make_dataset
from tfrs_models.selling_point.config import ModelConfig
from tfrs_models.selling_point.models import build_model


def test_input_pads_varlen_and_parses_spec_features(sp_spec):
    batch = next(iter(make_dataset(sp_spec, "ad_click", "train", 16)))
    assert set(batch) == set(sp_spec.dataset("ad_click").features)
    assert batch["title_tokens"].shape == (16, 16)
    assert batch["history_sf_keywords"].shape == (16, 20)
    assert batch["user_id"].shape == (16,)
    assert b"" in batch["title_tokens"].numpy()  # titles have ≤ 9 tokens: padding present


# One fresh-process reload costs ~15–30 s on the shared 2-core box: MTDL stays in the fast
# suite, BM and AMTDL run with the slow tests.
@pytest.mark.parametrize("kind", [pytest.param("bm", marks=pytest.mark.slow), "mtdl",
                                  pytest.param("amtdl", marks=pytest.mark.slow)])
def test_fit_export_reload_identical(kind, sp_spec, tmp_path):
    import tensorflow as tf

    tf.random.set_seed(0)
    model = build_model(sp_spec, ModelConfig(name=kind, embedding_dim=4, hidden_units=(8,)))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    sf = make_dataset(sp_spec, "sf", "train", 32)
    if kind == "bm":
        data = sf.map(lambda b: {"sf": b})
    else:
        ad = make_dataset(sp_spec, "ad_click", "train", 32)
        data = tf.data.Dataset.zip((sf, ad)).map(lambda s, a: {"sf": s, "ad_click": a})
    model.fit(data.take(3), epochs=1, verbose=0)
    batch = next(iter(make_dataset(sp_spec, "sf", "test", 16)))
    out = check_save_reload_roundtrip(model, batch, tmp_path)
    assert out["p_sf_click"].shape == (16,)
    assert np.all((out["p_sf_click"] > 0) & (out["p_sf_click"] < 1))


def test_amtdl_reads_the_extra_groups_and_bm_has_no_ad_head(sp_spec):
    bm = build_model(sp_spec, ModelConfig(name="bm"))
    amtdl = build_model(sp_spec, ModelConfig(name="amtdl"))
    assert not hasattr(bm, "ad_output")
    assert "age_bucket" in amtdl.input_signature() and "age_bucket" not in bm.input_signature()
    assert "query_category" in amtdl.input_signature()
    # the ad head reads the ad id, category and position beside the title
    assert set(amtdl.input_signature("ad_click")) >= {"title_tokens", "ad_id", "category", "position"}
    # user_id is off by default (it overfits); use_user_id keeps it
    assert "user_id" not in amtdl.input_signature()
    assert "user_id" in build_model(sp_spec, ModelConfig(name="amtdl", use_user_id=True)).input_signature()


def test_output_biases_start_at_the_train_base_rate(sp_spec):
    """Untrained heads predict about the train click rate, not 50%."""
    import math

    model = build_model(sp_spec, ModelConfig(name="mtdl"))
    for task, layer in (("sf", model.sf_output), ("ad_click", model.ad_output)):
        rate = sp_spec.label_rate(task, "train", "clicked")
        assert float(layer.bias.numpy()[0]) == pytest.approx(math.log(rate / (1 - rate)), rel=1e-6)


def test_dot_interactions_on_a_hand_case():
    """<e_v, e_g> per group: candidate (1, 2) against groups (3, 4) and (-1, 0.5) -> 11, 0."""
    import tensorflow as tf

    from tfrs_models.layers.candidate_dot_interactions import CandidateDotInteractions

    layer = CandidateDotInteractions()
    candidate = tf.constant([[1.0, 2.0], [0.0, 1.0]])
    groups = tf.constant([[3.0, 4.0, -1.0, 0.5], [2.0, 5.0, 7.0, -3.0]])  # 2 groups of D = 2
    np.testing.assert_allclose(layer(candidate, groups).numpy(), [[11.0, 0.0], [5.0, -3.0]])
    listed = layer(candidate, [groups[:, :2], groups[:, 2:]])
    np.testing.assert_allclose(listed.numpy(), [[11.0, 0.0], [5.0, -3.0]])


def test_dot_interactions_reach_the_sf_logit_linearly(sp_spec):
    """interactions="dot": the SF head's input is [MLP output, one dot per pooled group], and
    its logit moves by w_g · Δ<e_v, e_g> when a group's dot changes, plus the keyword's own bias
    b_v (hand-checked on the layer). The history group pools per feature by default."""
    import tensorflow as tf

    model = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,)))
    n_groups = len([g for side in model.group_order.values() for g in side
                    if model.task_features["sf"][g]])
    assert n_groups == 4  # history, user_profile, query, query_extra (user_id is off)
    # history pools SF keywords and ad title tokens separately: 5 pooled vectors, 5 dots,
    # weighted by w_g that start at 1
    assert model.sf_output.kernel.shape[0] == 8
    np.testing.assert_array_equal(model.sf_dot_weights.kernel.numpy(), np.ones((n_groups + 1, 1)))
    model.sf_dot_weights.kernel.assign(tf.random.normal([n_groups + 1, 1]))
    batch = next(iter(make_dataset(sp_spec, "sf", "train", 8)))
    users, queries = model._groups("sf", batch)
    assert len(users + queries) == 5
    keyword = model._pool_group(model.task_features["sf"]["item"], batch)
    hidden = model._hidden(users + queries, keyword, False)
    dots = tf.stack([tf.reduce_sum(keyword * g, axis=1) for g in users + queries], axis=1)
    model.item_bias.embeddings.assign(tf.random.normal(model.item_bias.embeddings.shape))
    ids = model.lookups["token"](batch["sf_keyword"])
    bias = tf.gather(model.item_bias.embeddings[:, 0], ids)
    logit = (hidden @ model.sf_output.kernel + model.sf_output.bias
             + dots @ model.sf_dot_weights.kernel)[:, 0] + bias
    np.testing.assert_allclose(model.predict_sf(batch).numpy(), tf.sigmoid(logit).numpy(),
                               rtol=1e-5)
    group = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,),
                                             history_pooling="group", item_bias=False))
    assert group.sf_dot_weights.kernel.shape[0] == n_groups and group.item_bias is None
    cross = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,),
                                             interactions="cross"))
    assert cross.sf_output.kernel.shape[0] == 8 and cross.cross[0].trainable_variables
    assert cross.sf_dot_weights is None


def test_appeal_title_pooling_on_a_hand_case():
    """α = softmax(τ·r) over real tokens, t = β·Σ α_j r_j; an all-padding title gives 0."""
    import tensorflow as tf

    from tfrs_models.layers.appeal_title_pooling import AppealTitlePooling

    layer = AppealTitlePooling()
    scores = tf.constant([[1.0, 2.0, 50.0], [3.0, -1.0, 0.0]])
    mask = tf.constant([[True, True, False], [False, False, False]])
    pooled, alpha = layer(scores, mask)
    a = math.exp(1.0) / (math.exp(1.0) + math.exp(2.0))  # 0.2689
    np.testing.assert_allclose(alpha.numpy(), [[a, 1 - a, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(pooled.numpy(), [a * 1.0 + (1 - a) * 2.0, 0.0], atol=1e-6)
    layer.temperature.assign(2.0)
    layer.title_weight.assign(0.5)
    pooled, alpha = layer(scores, mask)
    a = math.exp(2.0) / (math.exp(2.0) + math.exp(4.0))  # 0.1192
    np.testing.assert_allclose(pooled.numpy(), [0.5 * (a * 1.0 + (1 - a) * 2.0), 0.0], atol=1e-6)


def test_appeal_head_scores_a_title_token_as_the_sf_head_scores_that_keyword(sp_spec):
    """title_pooling="appeal": an ad whose title is the single keyword v, shown to the same
    user under the same query, gets β times the SF head's score of v (b_v + Σ_g w_g<φ_v, e_g>),
    whatever the (random) embeddings, biases and dot weights."""
    import tensorflow as tf

    tf.random.set_seed(3)
    model = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4,
                                             title_pooling="appeal", use_user_id=True))
    assert model.ad_dot_weights is None
    for table in list(model.embeddings.values()) + [model.item_bias]:
        table.embeddings.assign(tf.random.normal(table.embeddings.shape))
    model.sf_dot_weights.kernel.assign(tf.random.normal(model.sf_dot_weights.kernel.shape))
    for head in (model.sf_output, model.ad_output):  # leave only the keyword score and the biases
        head.kernel.assign(tf.zeros_like(head.kernel))
    model.title_attention.title_weight.assign(0.7)
    sf = next(iter(make_dataset(sp_spec, "sf", "train", 16)))
    ad = {name: sf[name] for name in model.input_signature("ad_click") if name in sf}
    ad["title_tokens"] = sf["sf_keyword"][:, tf.newaxis]
    for name in ("ad_id", "category", "position"):
        ad[name] = tf.fill([16], "")
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    sf_score = logit(model.predict_sf(sf).numpy().astype(np.float64)) - float(model.sf_output.bias[0])
    ad_score = logit(model.predict_ad(ad).numpy().astype(np.float64)) - float(model.ad_output.bias[0])
    assert np.std(sf_score) > 0.1
    np.testing.assert_allclose(ad_score, 0.7 * sf_score, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="appeal"):
        ModelConfig(title_pooling="appeal", interactions="cross", item_bias=False)


def test_regularisation_options_change_only_what_they_should(sp_spec):
    """exclude_features drops inputs; embedding_l2 adds Σ‖e‖² of the rows a batch looks up to
    the training loss only; dropout is training-only."""
    import tensorflow as tf

    batch = next(iter(make_dataset(sp_spec, "sf", "train", 16)))
    plain = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,),
                                             use_user_id=True))
    no_user = build_model(sp_spec, ModelConfig(name="amtdl", embedding_dim=4, hidden_units=(8,),
                                               exclude_features=("user_id",), use_user_id=True))
    assert "user_id" in plain.input_signature() and "user_id" not in no_user.input_signature()
    assert "user_id" not in no_user.input_signature("ad_click")
    assert no_user(batch)["p_sf_click"].shape == (16,)

    tf.random.set_seed(0)
    l2 = build_model(sp_spec, ModelConfig(name="mtdl", embedding_dim=4, hidden_units=(8,),
                                          embedding_l2=0.5))
    base = float(l2.sf_task(labels=tf.cast(batch["clicked"], tf.float32)[:, None],
                            predictions=l2.predict_sf(batch)[:, None]))
    sides = l2.task_features["sf"]
    expected = 0.0
    for feature in [f for fs in sides.values() for f in fs]:
        emb, mask = l2._embed(feature, batch[feature.name])
        expected += float(tf.reduce_sum(tf.square(emb) * tf.cast(mask, tf.float32)[..., None]))
    assert float(l2.task_loss("sf", batch, training=True)) == pytest.approx(
        base + 0.5 * expected, rel=1e-5)
    assert float(l2.task_loss("sf", batch, training=False)) == pytest.approx(base, rel=1e-5)

    # embedding_prior: λ Σ‖E‖² / N_train over every table (and the item biases), whatever the
    # batch looked up; compute_loss adds it in training only.
    prior = build_model(sp_spec, ModelConfig(name="mtdl", embedding_dim=4, hidden_units=(8,),
                                             embedding_prior=2.0))
    n_train = sp_spec.dataset("sf").row_counts["train"]
    squares = sum(float(np.sum(e.embeddings.numpy() ** 2)) for e in prior.embeddings.values())
    squares += float(np.sum(prior.item_bias.embeddings.numpy() ** 2))
    assert float(prior.prior_loss()) == pytest.approx(2.0 * squares / n_train, rel=1e-5)
    # a step on the SF source alone charges only the tables SF features read (not ad_id, ...)
    sf_vocabs = {f.vocab for fs in prior.task_features["sf"].values() for f in fs if f.vocab}
    assert "ad_id" not in sf_vocabs
    sf_squares = sum(float(np.sum(e.embeddings.numpy() ** 2))
                     for name, e in prior.embeddings.items() if name in sf_vocabs)
    sf_squares += float(np.sum(prior.item_bias.embeddings.numpy() ** 2))
    inputs = {"sf": batch}
    mean = float(prior.task_loss("sf", batch, training=False)) / 16
    assert float(prior.compute_loss(inputs, training=True)) == pytest.approx(
        mean + 2.0 * sf_squares / n_train, rel=1e-5)
    assert float(prior.compute_loss(inputs)) == pytest.approx(mean, rel=1e-5)

    drop = build_model(sp_spec, ModelConfig(name="bm", embedding_dim=4, hidden_units=(8,),
                                            dropout=0.5))
    np.testing.assert_array_equal(drop.predict_sf(batch).numpy(), drop.predict_sf(batch).numpy())
    assert not np.array_equal(drop.predict_sf(batch, training=True).numpy(),
                              drop.predict_sf(batch).numpy())


def test_unknown_excluded_feature_is_a_user_error(sp_spec):
    from adpush_core.errors import UserError

    with pytest.raises(UserError, match=r"exclude_features: user_idd not among the model features .*user_id"):
        build_model(sp_spec, ModelConfig(name="bm", exclude_features=("user_idd",)))
