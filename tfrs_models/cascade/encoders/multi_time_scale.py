"""Multi-time-scale encoder in the spirit of HEROES (003 — Jin et al., "Multi-Scale User Behavior
Network for Entire Space Multi-Task Learning"): clicks happen often, purchases
periodically, so the two tasks read the history at different time scales.

* ``click``: target attention over the most recent ``short_window`` events only (fine scale);
* ``conversion``: a strided TCN (filter ``2·cl + 1``, stride ``long_stride``) over the whole
  sequence, then target attention over the coarse, merged windows (long scale).
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder, downsample_mask, masked_sequence
from tfrs_models.cascade.encoders.target_attention import TargetAttention
from tfrs_models.cascade.encoders.tcn import TemporalConv

tf = import_tensorflow()


class MultiTimeScaleEncoder(SequenceEncoder):
    """Returns ``click`` [B, units] (short window) and ``conversion`` [B, units] (long window)."""

    task_specific = True

    def __init__(self, short_window: int = 8, context_length: int = 2, long_stride: int = 4,
                 units: int = 16, personalised: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.short_window, self.context_length = short_window, context_length
        self.long_stride, self.units, self.personalised = long_stride, units, personalised
        self.short_attention = TargetAttention(units, name="short_attention")
        self.long_tcn = TemporalConv(units, 2 * context_length + 1, long_stride, personalised,
                                     activation="relu", name="long_tcn")
        self.long_attention = TargetAttention(units, name="long_attention")

    def call(self, inputs, training=None):
        # Sequences are left-padded, most recent last: the short window is the tail.
        short_seq = inputs["sequence"][:, -self.short_window:, :]
        short_mask = inputs["mask"][:, -self.short_window:]
        click = self.short_attention(inputs["candidate"], short_seq, short_mask)
        long_seq = self.long_tcn(masked_sequence(inputs), inputs["profile"])
        long_mask = downsample_mask(inputs["mask"], 2 * self.context_length + 1, self.long_stride)
        conversion = self.long_attention(inputs["candidate"], long_seq, long_mask)
        return {"click": click, "conversion": conversion}

    def get_config(self):
        return {**super().get_config(), "short_window": self.short_window,
                "context_length": self.context_length, "long_stride": self.long_stride,
                "units": self.units, "personalised": self.personalised}
