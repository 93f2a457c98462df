"""Masked mean pooling of a bag of embeddings — Eq. (4) of 001."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


class MeanBagPooling(tf.keras.layers.Layer):
    """``e = (1/s) Σ_{i≤s} Em(w_i)`` over the real (unmasked) items of each bag, Eq. (4) of 001.

    A bag with no real item pools to the zero vector.

    Call args:
        embeddings: ``[B, L, D]`` float.
        bag_mask: ``[B, L]`` bool, True for real items, False for padding.

    Returns:
        ``[B, D]`` float.
    """

    def call(self, embeddings, bag_mask):
        weights = tf.cast(bag_mask, embeddings.dtype)[..., tf.newaxis]  # [B, L, 1]
        total = tf.reduce_sum(embeddings * weights, axis=1)
        count = tf.reduce_sum(weights, axis=1)
        return total / tf.maximum(count, 1.0)

    def get_config(self):
        return super().get_config()
