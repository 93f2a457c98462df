"""TCN + target attention (Section 4.1 of 002 — CAIN, Guo et al., "Introducing Context Information
in Lifelong Sequential Modeling using Temporal Convolutional Networks"; Eq. 5–6).

A convolution along time with context length ``cl`` — filter size ``2·cl + 1``, stride 1, zero
padding at both ends so the output keeps the sequence length — turns each event ``lhe_t`` into a
context-aware ``cr_t = (ctxe_t ∪ lhe_t) × W^C + b_c`` (Eq. 5), which then replaces ``lhe_t`` in
the target attention (Eq. 6). With ``personalised=True`` the filters come from PEG (Eq. 12).
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.encoders.base import SequenceEncoder, masked_sequence
from tfrs_models.cascade.encoders.peg import PersonalisedConv1D
from tfrs_models.cascade.encoders.target_attention import TargetAttention

tf = import_tensorflow()


class TemporalConv(tf.keras.layers.Layer):
    """One TCN layer, global (``Conv1D``) or personalised (PEG) filters.

    Call args: ``sequence`` [B, L, C], ``profile`` [B, D_p].
    Returns: [B, ceil(L / strides), filters].
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, personalised: bool = False,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.personalised = personalised
        self.activation_name = activation
        if personalised:
            self.conv = PersonalisedConv1D(filters, kernel_size, strides, activation=activation,
                                           name="peg_conv")
        else:
            self.conv = tf.keras.layers.Conv1D(filters, kernel_size, strides=strides, padding="same",
                                               activation=activation, name="conv")

    def call(self, sequence, profile):
        if self.personalised:
            return self.conv(sequence, profile)
        return self.conv(sequence)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "personalised": self.personalised,
                "activation": self.activation_name}


class TCNEncoder(SequenceEncoder):
    """TCN (context length ``cl``) then target attention: [B, L, E] → [B, units]."""

    def __init__(self, context_length: int = 2, units: int = 16, personalised: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.context_length, self.units, self.personalised = context_length, units, personalised
        self.tcn = TemporalConv(units, 2 * context_length + 1, 1, personalised, name="tcn")
        self.attention = TargetAttention(units, name="target_attention")

    def context_representations(self, inputs):
        """Eq. (5)/(12): [B, L, E] → cr [B, L, units] (same length: zero padding, stride 1)."""
        return self.tcn(masked_sequence(inputs), inputs["profile"])

    def encode(self, inputs, training=None):
        cr = self.context_representations(inputs)
        return self.attention(inputs["candidate"], cr, inputs["mask"])  # Eq. (6)

    def get_config(self):
        return {**super().get_config(), "context_length": self.context_length, "units": self.units,
                "personalised": self.personalised}
