"""Small building blocks of the task towers."""
from __future__ import annotations

import tensorflow as tf


class MLP(tf.keras.layers.Layer):
    """Dense → ReLU → Dropout per entry of ``units``.  [B, D] → [B, units[-1]]."""

    def __init__(self, units=(64, 32), dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = list(units), dropout
        self.dense_layers = [tf.keras.layers.Dense(u, activation="relu", name=f"dense_{i}")
                             for i, u in enumerate(self.units)]
        self.dropout_layers = [tf.keras.layers.Dropout(dropout) for _ in self.units]

    def call(self, x, training=None):
        for dense, drop in zip(self.dense_layers, self.dropout_layers):
            x = drop(dense(x), training=training)
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


class ProbabilityHead(tf.keras.layers.Layer):
    """Dense(1) → sigmoid.  [B, D] → [B, 1]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = tf.keras.layers.Dense(1, activation="sigmoid", name="logit")

    def call(self, x):
        return self.dense(x)
