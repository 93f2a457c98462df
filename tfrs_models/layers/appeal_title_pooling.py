"""Title pooling that scores each title token with the SF model's own keyword score."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


class AppealTitlePooling(tf.keras.layers.Layer):
    """``α = softmax(τ·r)`` over the real title tokens, ``t = β·Σ_j α_j r_j``.

    ``r_j`` is what the SF head would score token ``j`` as a candidate keyword for this user and
    query (its bias plus its crosses with the pooled user / history / profile / query groups), so
    the ad-click loss trains the very parameters the SF task ranks keywords with. It is 001's
    attention (Eq. 11–13: token weights personalised by user and query, softmax over real tokens
    only) with the additive MLP score ``zᵀ tanh(W_u e_u + W_q e_q + W_a Em(d_j))`` replaced by the
    shared bilinear score, which is the form of the world's ad-click model (``abtest/world``:
    a title counts through softmax-weighted appeals of its SP keywords).

    ``τ`` (temperature) and ``β`` (the title's weight in the ad logit) start at 1.

    Call args:
        scores: ``[B, L]`` — ``r_j``.
        token_mask: ``[B, L]`` bool, True for real tokens.

    Returns:
        ``(t [B], alpha [B, L])``; a title with no real token gives ``t = 0`` and zero weights.
    """

    def build(self, input_shape):
        self.temperature = self.add_weight(name="temperature", shape=(),
                                           initializer="ones", trainable=True)
        self.title_weight = self.add_weight(name="title_weight", shape=(),
                                      initializer="ones", trainable=True)
        super().build(input_shape)

    def call(self, scores, token_mask):
        mask = tf.cast(token_mask, scores.dtype)
        logits = tf.where(token_mask, self.temperature * scores, tf.fill(tf.shape(scores), -1e9))
        alpha = tf.nn.softmax(logits, axis=-1) * mask
        alpha = alpha / tf.maximum(tf.reduce_sum(alpha, axis=-1, keepdims=True), 1e-12)
        pooled = tf.reduce_sum(alpha * tf.where(token_mask, scores, tf.zeros_like(scores)), axis=-1)
        return self.title_weight * pooled, alpha
