"""Self-attention encoder (the context model 002 compares TCN against): one multi-head
self-attention block over the events, then target attention. Cost grows as O(L²)."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder
from tfrs_models.cascade.encoders.target_attention import TargetAttention

tf = import_tensorflow()


class SelfAttentionEncoder(SequenceEncoder):
    """[B, L, E] → [B, units]."""

    def __init__(self, units: int = 16, num_heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_heads = units, num_heads
        self.input_projection = tf.keras.layers.Dense(units, name="input_projection")
        self.self_attention = tf.keras.layers.MultiHeadAttention(
            num_heads, key_dim=max(units // num_heads, 1), name="self_attention")
        self.attention = TargetAttention(units, name="target_attention")

    def encode(self, inputs, training=None):
        x = self.input_projection(inputs["sequence"])
        mask = inputs["mask"]
        pair_mask = mask[:, :, tf.newaxis] & mask[:, tf.newaxis, :]
        x = x + self.self_attention(x, x, attention_mask=pair_mask, training=training)
        return self.attention(inputs["candidate"], x, mask)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads}
