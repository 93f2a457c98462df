"""The CTR→CVR model of 000 — El-Sherief, Khafagy, Sweidan, "Multitask Model with an Attention
Mechanism for Sequentially Dependent Online User Behaviors to Enhance Audience Targeting"
(Section III): 1D-CNN click tower, attention information transfer, calibrated loss.

* Click tower: stacked ``Conv1D`` over the embedded behaviour sequence, each event concatenated
  with the candidate's features; per layer explicit zero padding P, kernel K, stride S, so the
  output length is Eq. (1), ``N_o = (N_n − K + 2P) / S + 1`` (floored; checked at build time);
  ReLU, dropout, flatten, dense, sigmoid. On a flat dataset (Ali-CCP) the "sequence" is the stack
  of field embeddings, as in 000. The dense layer also reads the encoder's click interest and the
  context embeddings, so every input reaches the click task.
* Conversion tower: MLP over the shared embeddings (and the conversion interest); information
  vector = feed-forward layer on the click tower's hidden output; scaled dot-product attention
  (Eq. 2–4) over {conversion-tower output, information vector}; dense; sigmoid.
* Loss (Eq. 5–7): BCE(click) + BCE(click-and-convert) + α·mean(max(p_conversion − p_click, 0)),
  α = 0.6 by default (AITM's).
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.losses import AITM_DEFAULT_ALPHA
from tfrs_models.cascade.models.base import CascadeModel
from tfrs_models.cascade.towers import MLP, ProbabilityHead
from tfrs_models.cascade.transfer import InformationTransferAttention

tf = import_tensorflow()


def conv_output_length(length: int, kernel_size: int, stride: int, padding: int) -> int:
    """Eq. (1) of 000: ``N_o = floor((N_n − K + 2P) / S) + 1``."""
    return (length - kernel_size + 2 * padding) // stride + 1


class ConvClickTower(tf.keras.layers.Layer):
    """Stacked 1D convolutions → flatten.  [B, L, C] → [B, N_o · filters[-1]].

    Raises ValueError at build time if a layer's output length differs from Eq. (1) or is < 1.
    """

    def __init__(self, filters, kernel_sizes, strides, paddings, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not len(filters) == len(kernel_sizes) == len(strides) == len(paddings):
            raise ValueError("conv filters, kernel sizes, strides and paddings need one entry per layer")
        self.filters, self.kernel_sizes = list(filters), list(kernel_sizes)
        self.strides, self.paddings, self.dropout = list(strides), list(paddings), dropout
        self.pads = [tf.keras.layers.ZeroPadding1D(p, name=f"pad_{i}") for i, p in enumerate(self.paddings)]
        self.convs = [tf.keras.layers.Conv1D(f, k, strides=s, padding="valid", activation="relu",
                                             name=f"conv_{i}")
                      for i, (f, k, s) in enumerate(zip(self.filters, self.kernel_sizes, self.strides))]
        self.drops = [tf.keras.layers.Dropout(dropout) for _ in self.filters]

    def output_lengths(self, length: int) -> list[int]:
        """Eq. (1) applied layer by layer."""
        lengths = []
        for k, s, p in zip(self.kernel_sizes, self.strides, self.paddings):
            length = conv_output_length(length, k, s, p)
            if length < 1:
                raise ValueError(f"Eq. (1) gives output length {length} < 1 for K={k}, S={s}, P={p}")
            lengths.append(length)
        return lengths

    def call(self, x, training=None):
        expected = self.output_lengths(int(x.shape[1]))
        for pad, conv, drop, n_o in zip(self.pads, self.convs, self.drops, expected):
            x = drop(conv(pad(x)), training=training)
            if x.shape[1] != n_o:
                raise AssertionError(f"Conv1D output length {x.shape[1]} != Eq. (1) {n_o}")
        return tf.reshape(x, [-1, x.shape[1] * x.shape[2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_sizes": self.kernel_sizes,
                "strides": self.strides, "paddings": self.paddings, "dropout": self.dropout}


class CNNAttentionModel(CascadeModel):
    """000's model. Outputs ``p_click``, ``p_conversion`` [B, 1]."""

    default_calibrator_weight = AITM_DEFAULT_ALPHA

    def __init__(self, layout, config, **kwargs):
        super().__init__(layout, config, **kwargs)
        c = config
        self.click_tower = ConvClickTower(c.conv_filters, c.conv_kernel_sizes, c.conv_strides,
                                          c.conv_paddings, c.dropout, name="click_tower")
        self.click_dense = tf.keras.layers.Dense(c.tower_units[-1], activation="relu", name="click_dense")
        self.click_head = ProbabilityHead(self.prior("click"), name="p_click")
        self.conversion_tower = MLP(c.tower_units, c.dropout, name="conversion_tower")
        self.information = tf.keras.layers.Dense(c.tower_units[-1], name="information")
        self.transfer = InformationTransferAttention(c.attention_units, name="attention")
        self.conversion_dense = tf.keras.layers.Dense(c.tower_units[-1], activation="relu",
                                                      name="conversion_dense")
        self.conversion_head = ProbabilityHead(self.prior("conversion"), name="p_conversion")
        self.uses_field_sequence = not any(f["part"] == "sequence" for f in layout["features"])

    def heads(self, inputs, training=None):
        sequence = inputs["sequence"]                                       # [B, L, E]
        if not self.uses_field_sequence:
            sequence = sequence * tf.cast(inputs["mask"], sequence.dtype)[..., tf.newaxis]
            length = tf.shape(sequence)[1]
            candidate = tf.tile(inputs["candidate"][:, tf.newaxis, :], [1, length, 1])
            sequence = tf.concat([sequence, candidate], axis=-1)            # [B, L, E + D_c]
        conv = self.click_tower(sequence, training=training)                # [B, N_o · F]
        click_parts = [conv]
        if not self.uses_field_sequence:
            click_parts.append(self.flat_inputs(inputs, "click"))
        click_hidden = self.click_dense(tf.concat(click_parts, axis=-1))    # [B, H]
        conversion_repr = self.conversion_tower(self.flat_inputs(inputs, "conversion"), training=training)
        z = self.transfer(conversion_repr, self.information(click_hidden))  # Eq. (2)–(4)
        return {"p_click": self.click_head(click_hidden),
                "p_conversion": self.conversion_head(self.conversion_dense(z))}
