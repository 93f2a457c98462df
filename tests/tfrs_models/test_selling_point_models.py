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
    model = build_model(sp_spec, ModelConfig(model=kind, embedding_dim=4, hidden_units=(8,)))
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
    bm = build_model(sp_spec, ModelConfig(model="bm"))
    amtdl = build_model(sp_spec, ModelConfig(model="amtdl"))
    assert not hasattr(bm, "ad_output")
    assert "age_bucket" in amtdl.input_signature() and "age_bucket" not in bm.input_signature()
    assert "query_category" in amtdl.input_signature()
    assert set(amtdl.input_signature("ad_click")) >= {"title_tokens", "user_id"}


def test_regularisation_options_change_only_what_they_should(sp_spec):
    """exclude_features drops inputs; embedding_l2 adds Σ‖e‖² of the rows a batch looks up to
    the training loss only; interactions widen the MLP input; dropout is training-only."""
    import tensorflow as tf

    batch = next(iter(make_dataset(sp_spec, "sf", "train", 16)))
    plain = build_model(sp_spec, ModelConfig(model="amtdl", embedding_dim=4, hidden_units=(8,)))
    no_user = build_model(sp_spec, ModelConfig(model="amtdl", embedding_dim=4, hidden_units=(8,),
                                               exclude_features=("user_id",)))
    assert "user_id" in plain.input_signature() and "user_id" not in no_user.input_signature()
    assert "user_id" not in no_user.input_signature("ad_click")
    assert no_user(batch)["p_sf_click"].shape == (16,)

    tf.random.set_seed(0)
    l2 = build_model(sp_spec, ModelConfig(model="mtdl", embedding_dim=4, hidden_units=(8,),
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

    wide = build_model(sp_spec, ModelConfig(model="mtdl", embedding_dim=4, hidden_units=(8,),
                                            interactions=True))
    narrow = build_model(sp_spec, ModelConfig(model="mtdl", embedding_dim=4, hidden_units=(8,)))
    # [user_id, history] ⊙ item and [query] ⊙ item: 3 more groups of 4.
    assert wide.shared_mlp.layers[0].kernel.shape[0] == narrow.shared_mlp.layers[0].kernel.shape[0] + 12

    drop = build_model(sp_spec, ModelConfig(model="bm", embedding_dim=4, hidden_units=(8,),
                                            dropout=0.5))
    np.testing.assert_array_equal(drop.predict_sf(batch).numpy(), drop.predict_sf(batch).numpy())
    assert not np.array_equal(drop.predict_sf(batch, training=True).numpy(),
                              drop.predict_sf(batch).numpy())


def test_unknown_excluded_feature_is_a_user_error(sp_spec):
    from adpush.errors import UserError

    with pytest.raises(UserError, match=r"exclude_features: user_idd not among the model features .*user_id"):
        build_model(sp_spec, ModelConfig(model="bm", exclude_features=("user_idd",)))
