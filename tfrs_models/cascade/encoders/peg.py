"""Personalized Extractor Generation (PEG, Section 4.3 of 002).

A two-layer network turns the user's profile embedding I into that user's convolution filters
(Eq. 10–11), which replace the global TCN filters (Eq. 12):
  ``O_n = ReLU(W^{P1}_n I + b^{P1}_n)``,  ``W^{PC}_n = Reshape(W^{P2}_n O_n + b^{P2}_n)``,
  ``cr_t = (ctxe_t ∪ lhe_t) × W^{PC} + b_c``.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow


tf = import_tensorflow()


def same_padding(length, kernel_size: int, stride: int):
    """Left/right zero padding of TF's 'same' convolution (output length ceil(L / S))."""
    out = -(-length // stride)
    total = tf.maximum((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


class PersonalisedConv1D(tf.keras.layers.Layer):
    """1D convolution whose filters are generated per example from the profile (Eq. 10–12).

    Call args: ``sequence`` [B, L, C_in], ``profile`` [B, D_p].
    Returns: [B, ceil(L / stride), filters], zero ('same') padding as the global TCN.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, hidden_units: int = 32,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.hidden_units = hidden_units
        self.activation = tf.keras.activations.get(activation)
        self.generator_hidden = tf.keras.layers.Dense(hidden_units, activation="relu", name="w_p1")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.channels = channels
        # Scaled like a glorot-initialised global filter so training starts in the same regime.
        scale = (6.0 / ((channels + self.filters) * self.kernel_size * self.hidden_units)) ** 0.5
        self.generator_output = tf.keras.layers.Dense(
            self.kernel_size * channels * self.filters, name="w_p2",
            kernel_initializer=tf.keras.initializers.RandomUniform(-scale, scale))
        self.bias = self.add_weight(name="b_c", shape=[self.filters], initializer="zeros")
        super().build(input_shape)

    def generate_filters(self, profile):
        """Eq. (10)–(11): profile [B, D_p] → filters [B, K, C_in, filters]."""
        hidden = self.generator_hidden(profile)
        flat = self.generator_output(hidden)
        return tf.reshape(flat, [-1, self.kernel_size, self.channels, self.filters])

    def call(self, sequence, profile):
        kernels = self.generate_filters(profile)
        left, right = same_padding(tf.shape(sequence)[1], self.kernel_size, self.strides)
        padded = tf.pad(sequence, [[0, 0], [left, right], [0, 0]])
        frames = tf.signal.frame(padded, self.kernel_size, self.strides, axis=1)  # [B, L', K, C]
        out = tf.einsum("blkc,bkco->blo", frames, kernels) + self.bias            # Eq. (12)
        return self.activation(out)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "hidden_units": self.hidden_units,
                "activation": tf.keras.activations.serialize(self.activation)}
