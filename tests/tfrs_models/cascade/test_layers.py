"""Hand-computed checks of the cascade layers and loss (000 Eq. 1–7, 002 Eq. 5–12)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tfrs_models.cascade  # noqa: F401  (selects Keras 2 before TensorFlow)


@pytest.mark.parametrize("length,kernel,stride,padding,expected", [
    (12, 3, 1, 1, 12), (12, 3, 2, 1, 6), (12, 5, 1, 0, 8), (12, 4, 3, 2, 5), (7, 7, 1, 0, 1)])
def test_eq1_output_length(length, kernel, stride, padding, expected):
    import tensorflow as tf

    from tfrs_models.cascade.models.cnn_attention import ConvClickTower, conv_output_length

    assert conv_output_length(length, kernel, stride, padding) == expected
    tower = ConvClickTower([4], [kernel], [stride], [padding])
    out = tower(tf.ones([2, length, 3]))
    assert out.shape == (2, expected * 4)


def test_eq1_rejects_empty_output():
    import tensorflow as tf

    from tfrs_models.cascade.models.cnn_attention import ConvClickTower

    with pytest.raises(ValueError, match="Eq. \\(1\\)"):
        ConvClickTower([4], [9], [1], [0])(tf.ones([1, 5, 2]))


def test_transfer_attention_weights_hand_case():
    """Identity Q, K, V with d = 2: scores q·q/√2 and p·p/√2, softmax over the pair (Eq. 2–4)."""
    import tensorflow as tf

    from tfrs_models.cascade.transfer import InformationTransferAttention

    layer = InformationTransferAttention(units=2)
    tower, info = tf.constant([[1.0, 0.0]]), tf.constant([[2.0, 2.0]])
    layer(tower, info)
    for dense in (layer.query, layer.key, layer.value):
        dense.set_weights([np.eye(2, dtype=np.float32)])
    weights, _ = layer.attention_weights(tower, info)
    s1, s2 = 1.0 / math.sqrt(2), 8.0 / math.sqrt(2)
    w1 = math.exp(s1) / (math.exp(s1) + math.exp(s2))
    np.testing.assert_allclose(weights.numpy(), [[w1, 1 - w1]], rtol=1e-5)
    np.testing.assert_allclose(layer(tower, info).numpy(), [[w1 + 2 * (1 - w1), 2 * (1 - w1)]], rtol=1e-5)


def test_target_attention_ignores_padding():
    import tensorflow as tf

    from tfrs_models.cascade.encoders.target_attention import TargetAttention

    layer = TargetAttention(units=2)
    query = tf.constant([[1.0, 0.0]])
    keys = tf.constant([[[9.0, 9.0], [1.0, 0.0], [0.0, 1.0]]])
    mask = tf.constant([[False, True, True]])
    layer(query, keys, mask)
    for dense in (layer.query_projection, layer.key_projection, layer.value_projection):
        dense.set_weights([np.eye(2, dtype=np.float32)])
    weights = layer.attention_weights(query, keys, mask).numpy()
    w = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    np.testing.assert_allclose(weights, [[0.0, w, 1 - w]], rtol=1e-5)


def test_calibrator_zero_when_conversion_below_click():
    from tfrs_models.cascade.losses import behaviour_calibrator

    assert float(behaviour_calibrator([0.5, 0.3, 0.9], [0.1, 0.3, 0.2])) == 0.0


def test_calibrator_hand_value_and_total_loss():
    from tfrs_models.cascade.losses import behaviour_calibrator, calibrated_loss

    p_click, p_conv = [0.2, 0.5, 0.4], [0.5, 0.1, 0.6]
    # max(0.3, 0) + max(-0.4, 0) + max(0.2, 0) = 0.5 over 3 impressions
    np.testing.assert_allclose(float(behaviour_calibrator(p_click, p_conv)), 0.5 / 3, rtol=1e-6)
    click, conv = [1, 0, 1], [0, 0, 1]
    bce_click = -(math.log(0.2) + math.log(0.5) + math.log(0.4)) / 3
    bce_conv = -(math.log(0.5) + math.log(0.9) + math.log(0.6)) / 3
    total = float(calibrated_loss(click, p_click, conv, p_conv, alpha=0.6))
    np.testing.assert_allclose(total, bce_click + bce_conv + 0.6 * 0.5 / 3, rtol=1e-5)


def test_tcn_zero_padding_keeps_length_and_uses_zero_context():
    """Filter 2·cl + 1 = 3 of ones: each output sums its neighbours, zeros beyond the ends."""
    import tensorflow as tf

    from tfrs_models.cascade.encoders.tcn import TemporalConv

    conv = TemporalConv(1, 3)
    x = tf.constant([[[1.0], [2.0], [3.0], [4.0], [5.0]]])
    conv(x, None)
    conv.conv.set_weights([np.ones([3, 1, 1], np.float32), np.zeros([1], np.float32)])
    out = conv(x, None).numpy()[0, :, 0]
    np.testing.assert_allclose(out, [3.0, 6.0, 9.0, 12.0, 9.0])


def test_personalised_conv_matches_global_conv_for_same_filters():
    """Eq. 12 with the generated filter equal to a global one gives the global TCN's output."""
    import tensorflow as tf

    from tfrs_models.cascade.encoders.peg import PersonalisedConv1D

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=[2, 7, 3]), tf.float32)
    kernel = rng.normal(size=[3, 3, 4]).astype(np.float32)
    for stride in (1, 2):
        global_conv = tf.keras.layers.Conv1D(4, 3, strides=stride, padding="same", use_bias=False)
        global_conv(x)
        global_conv.set_weights([kernel])
        peg = PersonalisedConv1D(4, 3, strides=stride)
        peg.generate_filters = lambda profile: tf.tile(kernel[np.newaxis], [2, 1, 1, 1])
        np.testing.assert_allclose(peg(x, tf.zeros([2, 5])).numpy(), global_conv(x).numpy(), atol=1e-5)


def test_peg_gives_different_filters_for_different_profiles():
    import tensorflow as tf

    from tfrs_models.cascade.encoders.peg import PersonalisedConv1D

    tf.keras.utils.set_random_seed(0)
    peg = PersonalisedConv1D(4, 3)
    profiles = tf.constant([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [1.0, 0.0, 0.5]])
    peg(tf.ones([3, 5, 2]), profiles)
    filters = peg.generate_filters(profiles).numpy()
    assert filters.shape == (3, 3, 2, 4)
    assert np.abs(filters[0] - filters[1]).max() > 1e-3
    np.testing.assert_allclose(filters[0], filters[2])


def test_msia_strided_layers_and_mask():
    import tensorflow as tf

    from tfrs_models.cascade.encoders.base import downsample_mask
    from tfrs_models.cascade.encoders.msia import MSIAEncoder

    mask = tf.constant([[False, False, False, False, True, True, True]])
    # 'same' windows of 3 at stride 2 cover events [-1, 1], [1, 3], [3, 5], [5, 7].
    assert downsample_mask(mask, 3, 2).numpy().tolist() == [[False, False, True, True]]
    enc = MSIAEncoder((3, 3), (1, 2), units=4)
    inputs = {"sequence": tf.ones([1, 7, 5]), "mask": mask, "candidate": tf.ones([1, 2]),
              "profile": tf.ones([1, 2])}
    assert enc(inputs)["click"].shape == (1, 8)
    with pytest.raises(ValueError):
        MSIAEncoder((3, 3), (2, 2))


def test_multi_time_scale_short_window_only_reads_recent_events():
    import tensorflow as tf

    from tfrs_models.cascade.encoders.multi_time_scale import MultiTimeScaleEncoder

    enc = MultiTimeScaleEncoder(short_window=2, context_length=1, long_stride=2, units=4)
    base = np.random.default_rng(1).normal(size=[1, 6, 3]).astype(np.float32)
    changed = base.copy()
    changed[0, 0] += 5.0  # an old event: outside the short window
    inputs = lambda seq: {"sequence": tf.constant(seq), "mask": tf.ones([1, 6], tf.bool),
                          "candidate": tf.ones([1, 2]), "profile": tf.ones([1, 2])}
    a, b = enc(inputs(base)), enc(inputs(changed))
    np.testing.assert_allclose(a["click"].numpy(), b["click"].numpy())
    assert np.abs(a["conversion"].numpy() - b["conversion"].numpy()).max() > 1e-6
