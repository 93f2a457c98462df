import math

import numpy as np

import tfrs_models  # noqa: F401 - selects Keras 2
from tfrs_models.layers.title_attention_pooling import TitleAttentionPooling

# D = 2 token dims, U = 1 attention unit, 1-dim user and query.
TOKENS = np.array([[[1.0, 0.0], [0.0, 1.0], [50.0, 50.0]]], dtype=np.float32)
MASK = np.array([[True, True, False]])


def _layer():
    layer = TitleAttentionPooling(units=1)
    layer(TOKENS, MASK, np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32))
    layer.user_projection.set_weights([np.array([[1.0]], np.float32)])   # W_u
    layer.query_projection.set_weights([np.array([[0.5]], np.float32)])  # W_q
    layer.token_projection.set_weights([np.array([[1.0], [-1.0]], np.float32)])  # W_a
    layer.score.set_weights([np.array([[2.0]], np.float32)])  # z
    return layer


def _expected(user, query):
    # b_j = z tanh(W_u e_u + W_q e_q + W_a d_j): d_1 → +1, d_2 → -1 from W_a.
    b1 = 2.0 * math.tanh(user + 0.5 * query + 1.0)
    b2 = 2.0 * math.tanh(user + 0.5 * query - 1.0)
    a1 = math.exp(b1) / (math.exp(b1) + math.exp(b2))
    return np.array([a1, 1 - a1, 0.0]), np.array([a1, 1 - a1])


def test_hand_computed_weights_respect_mask_and_sum_to_one():
    layer = _layer()
    pooled, alpha = layer(TOKENS, MASK, np.array([[0.0]], np.float32), np.array([[0.0]], np.float32))
    weights, e_a = _expected(0.0, 0.0)
    np.testing.assert_allclose(alpha.numpy()[0], weights, rtol=1e-5)
    assert alpha.numpy()[0, 2] == 0.0  # the padded 50s never leak in
    np.testing.assert_allclose(alpha.numpy().sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pooled.numpy()[0], e_a, rtol=1e-5)


def test_personalisation_changes_the_weights():
    layer = _layer()
    _, low = layer(TOKENS, MASK, np.array([[-1.0]], np.float32), np.array([[0.0]], np.float32))
    _, high = layer(TOKENS, MASK, np.array([[1.0]], np.float32), np.array([[2.0]], np.float32))
    np.testing.assert_allclose(low.numpy()[0], _expected(-1.0, 0.0)[0], rtol=1e-5)
    np.testing.assert_allclose(high.numpy()[0], _expected(1.0, 2.0)[0], rtol=1e-5)
    assert abs(low.numpy()[0, 0] - high.numpy()[0, 0]) > 0.1


def test_all_padding_title_pools_to_zero():
    layer = _layer()
    pooled, alpha = layer(TOKENS, np.zeros((1, 3), bool), np.zeros((1, 1), np.float32),
                          np.zeros((1, 1), np.float32))
    assert np.all(alpha.numpy() == 0) and np.all(pooled.numpy() == 0)


def test_get_config_round_trip():
    config = TitleAttentionPooling(units=7, name="att").get_config()
    assert config["units"] == 7 and TitleAttentionPooling.from_config(config).units == 7
