"""Information transfer between the click and conversion towers by scaled dot-product attention.

Eq. (2)–(4) of 000 (the AIT module of AITM, Xi et al., KDD 2021): for the set
``a ∈ {conversion-tower output q, information vector p}``
  ``w_a = Q(a)·K(a) / √d`` (2),  ``w = softmax(w)`` over the set (3),  ``z = Σ_a w_a V(a)`` (4),
with Q, K, V feed-forward (linear) layers.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow


tf = import_tensorflow()


class InformationTransferAttention(tf.keras.layers.Layer):
    """Call args: ``tower`` [B, D], ``information`` [B, D].  Returns z [B, units].

    ``last_weights`` is not kept; use ``attention_weights`` to inspect w [B, 2].
    """

    def __init__(self, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query = tf.keras.layers.Dense(units, use_bias=False, name="q")
        self.key = tf.keras.layers.Dense(units, use_bias=False, name="k")
        self.value = tf.keras.layers.Dense(units, use_bias=False, name="v")

    def attention_weights(self, tower, information):
        inputs = tf.stack([tower, information], axis=1)                                  # [B, 2, D]
        scores = tf.reduce_sum(self.query(inputs) * self.key(inputs), -1) / tf.sqrt(float(self.units))  # (2)
        return tf.nn.softmax(scores, axis=-1), inputs                                     # (3)

    def call(self, tower, information):
        weights, inputs = self.attention_weights(tower, information)
        return tf.reduce_sum(weights[..., tf.newaxis] * self.value(inputs), axis=1)       # (4)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
