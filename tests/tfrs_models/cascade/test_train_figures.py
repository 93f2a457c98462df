"""The figures ``train_model`` reaches on the cascade fixture, pinned before the training moved
onto the shared harness (distribution strategies, SUM-reduced losses scaled by the global batch,
checkpoints): with one replica they must not move.

Batch 25 on 192 train rows leaves a last partial batch of 17 rows (``loss`` is that batch's), and
both runs stop early at the fourth epoch (patience 1), so the test figures are those of the
restored best (third) epoch.
"""
from __future__ import annotations

import pytest

PINNED = {
    ("cnn_attention", "tcn"): ({
        "loss": [0.402849, 0.2569518, 0.7030488, 0.8329687],
        "regularization_loss": [0.0, 0.0, 0.0, 0.0],
        "objective": [0.6075441, 0.5949137, 0.5803968, 0.5571263],
        "calibrator": [0.0, 0.0, 0.0, 0.0],
        "click_auc": [0.5706385, 0.7181163, 0.7419977, 0.7890062],
        "val_objective": [0.5532874, 0.5489224, 0.5405407, 0.5440431],
        "val_click_auc": [0.5828125, 0.6, 0.63125, 0.6453125],
        "val_conversion_auc": [0.5, 0.5, 0.3617021, 0.6808511],
    }, 0.8483516483516483, 0.6595744680851063),
    ("esmm", "mean"): ({
        "loss": [0.3975826, 0.2527892, 0.7103135, 0.815225],
        "regularization_loss": [0.0001267, 0.0001039, 0.0001324, 0.0001753],
        "objective": [0.6069677, 0.58798, 0.5684164, 0.5461114],
        "calibrator": [0.0, 0.0, 0.0, 0.0],
        "click_auc": [0.548852, 0.7221384, 0.7279202, 0.7452656],
        "val_objective": [0.5543652, 0.542814, 0.536154, 0.5382856],
        "val_click_auc": [0.5953125, 0.634375, 0.653125, 0.653125],
        "val_conversion_auc": [0.5319149, 0.6702127, 0.6489362, 0.6702127],
    }, 0.8219780219780219, 0.574468085106383),
}
# esmm also carries both embedding regularisers (the mini-batch L2 and the prior).
EXTRA = {"esmm": {"embedding_l2": 1e-3, "embedding_prior": 1e-2}}


@pytest.mark.parametrize("model, encoder", sorted(PINNED))
def test_train_model_figures_are_pinned(cascade_spec, model, encoder):
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from tfrs_models.cascade.config import ModelConfig, TrainConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig
    from tfrs_models.cascade.train import predict_split, score, train_model

    history, click_auc, conversion_auc = PINNED[model, encoder]
    trained, got = train_model(
        cascade_spec, ModelConfig(name=model, encoder=EncoderConfig(name=encoder), **EXTRA.get(model, {})),
        TrainConfig(batch_size=25, epochs=4, learning_rate=3e-3, seed=0), patience=1)
    for key, values in history.items():
        assert got[key] == pytest.approx(values, abs=1e-6), key
    test = score(predict_split(lambda b: trained(b, training=False), cascade_spec, "test"))
    assert test["click"]["auc"] == pytest.approx(click_auc, abs=1e-9)
    assert test["conversion"]["auc"] == pytest.approx(conversion_auc, abs=1e-9)
