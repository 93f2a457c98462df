"""Target attention: the candidate item is the query over the behaviour sequence.

Eq. (8)–(9) of 002 (CAIN's auxiliary attention):
  ``sa_t = (W^Q ve)(W^K cr_t)ᵀ / √d``,  ``IR = Σ_t sa_t · W^V cr_t``,
with the scores normalised by a softmax over the real (unmasked) events so that the pooled
vector does not grow with sequence length.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder

tf = import_tensorflow()


def masked_softmax(scores, mask):
    """Softmax over the last axis restricted to ``mask``; an all-masked row gives zeros."""
    scores = tf.where(mask, scores, tf.fill(tf.shape(scores), tf.cast(-1e9, scores.dtype)))
    weights = tf.nn.softmax(scores, axis=-1)
    return weights * tf.cast(mask, weights.dtype)


class TargetAttention(tf.keras.layers.Layer):
    """Projected scaled dot-product attention with one query per example.

    Call args: ``query`` [B, D_q], ``keys`` [B, L, E], ``mask`` [B, L].
    Returns: interest vector [B, units]; ``last_weights`` holds the [B, L] weights of the call.
    """

    def __init__(self, units: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_projection = tf.keras.layers.Dense(units, use_bias=False, name="w_q")
        self.key_projection = tf.keras.layers.Dense(units, use_bias=False, name="w_k")
        self.value_projection = tf.keras.layers.Dense(units, use_bias=False, name="w_v")

    def attention_weights(self, query, keys, mask):
        q = self.query_projection(query)[:, tf.newaxis, :]                 # [B, 1, d]
        k = self.key_projection(keys)                                      # [B, L, d]
        scores = tf.reduce_sum(q * k, axis=-1) / tf.sqrt(float(self.units))  # Eq. (8)
        return masked_softmax(scores, mask)                                # [B, L]

    def call(self, query, keys, mask):
        weights = self.attention_weights(query, keys, mask)
        values = self.value_projection(keys)                               # [B, L, d]
        return tf.reduce_sum(weights[..., tf.newaxis] * values, axis=1)    # Eq. (9)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class TargetAttentionEncoder(SequenceEncoder):
    """Target attention directly over the embedded events (no context): [B, L, E] → [B, units]."""

    def __init__(self, units: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.attention = TargetAttention(units, name="target_attention")

    def encode(self, inputs, training=None):
        return self.attention(inputs["candidate"], inputs["sequence"], inputs["mask"])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
