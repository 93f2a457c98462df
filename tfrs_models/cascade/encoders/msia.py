"""Multi-Scope Interest Aggregator (MSIA, Section 4.2 of 002).

Stacked TCN layers; the first has stride 1 (every event keeps its own representation), later
layers stride > 1 so the context grows quickly (Eq. 7, ``cl_{n+1} = cl_n + fs_{n+1} − 1`` at
stride 1) and the sequence shortens. Each layer's output gets its own target attention
(Eq. 8–9) and the interest vectors IR_n are concatenated. The major attention of the paper (LAP)
is replaced by the same target attention as the auxiliary ones.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder, downsample_mask, masked_sequence
from tfrs_models.cascade.encoders.target_attention import TargetAttention
from tfrs_models.cascade.encoders.tcn import TemporalConv

tf = import_tensorflow()


class MSIAEncoder(SequenceEncoder):
    """[B, L, E] → concat_n IR_n, [B, len(filter_sizes) · units].

    Args:
      filter_sizes: filter size of each TCN layer.
      strides: stride of each layer; the first must be 1.
      personalised: PEG filters in every layer.
    """

    def __init__(self, filter_sizes=(5, 3, 3), strides=(1, 2, 2), units: int = 16,
                 personalised: bool = False, **kwargs):
        super().__init__(**kwargs)
        if len(filter_sizes) != len(strides) or strides[0] != 1:
            raise ValueError("MSIA needs one stride per layer and stride 1 in the first layer")
        self.filter_sizes, self.strides = list(filter_sizes), list(strides)
        self.units, self.personalised = units, personalised
        # ReLU between layers: the non-linearity 002 credits for deeper layers' representativeness.
        self.tcn_layers = [TemporalConv(units, k, s, personalised, activation="relu", name=f"tcn_{n}")
                           for n, (k, s) in enumerate(zip(self.filter_sizes, self.strides))]
        self.attentions = [TargetAttention(units, name=f"attention_{n}")
                           for n in range(len(self.filter_sizes))]

    def encode(self, inputs, training=None):
        x, mask, interests = masked_sequence(inputs), inputs["mask"], []
        for tcn, attention, k, s in zip(self.tcn_layers, self.attentions, self.filter_sizes, self.strides):
            x = tcn(x, inputs["profile"])
            mask = downsample_mask(mask, k, s)
            x = x * tf.cast(mask, x.dtype)[..., tf.newaxis]
            interests.append(attention(inputs["candidate"], x, mask))
        return tf.concat(interests, axis=-1)

    def get_config(self):
        return {**super().get_config(), "filter_sizes": self.filter_sizes, "strides": self.strides,
                "units": self.units, "personalised": self.personalised}
