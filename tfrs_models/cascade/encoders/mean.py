"""Mean pooling over the real events of the sequence (the simplest baseline encoder)."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder, masked_sequence

tf = import_tensorflow()


class MeanPoolingEncoder(SequenceEncoder):
    """``h = Σ_t m_t x_t / max(Σ_t m_t, 1)``.  sequence [B, L, E] → [B, E]."""

    def encode(self, inputs, training=None):
        total = tf.reduce_sum(masked_sequence(inputs), axis=1)
        count = tf.reduce_sum(tf.cast(inputs["mask"], total.dtype), axis=1, keepdims=True)
        return total / tf.maximum(count, 1.0)
