"""What every sequence encoder takes and returns.

Input dict (from ``SharedEmbeddings``): ``sequence`` [B, L, E], ``mask`` [B, L] bool,
``candidate`` [B, D_c], ``profile`` [B, D_p].
Output dict: ``click`` [B, H] and ``conversion`` [B, H] — the interest vector each task tower
reads. Single-scale encoders return the same tensor for both; ``task_specific`` is False then.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow


tf = import_tensorflow()


class SequenceEncoder(tf.keras.layers.Layer):
    task_specific = False

    def encode(self, inputs, training=None):
        """Return [B, H] for single-scale encoders."""
        raise NotImplementedError

    def call(self, inputs, training=None):
        pooled = self.encode(inputs, training=training)
        return {"click": pooled, "conversion": pooled}


def masked_sequence(inputs):
    """The sequence with padded events zeroed, so they act as the zero padding of Eq. (5) of 002."""
    mask = tf.cast(inputs["mask"], inputs["sequence"].dtype)[..., tf.newaxis]
    return inputs["sequence"] * mask


def downsample_mask(mask, kernel_size: int, stride: int):
    """Mask of a 'same'-padded strided convolution output: a window is real if any input is.

    Args:
      mask: [B, L] bool.  Returns: [B, ceil(L / stride)] bool.
    """
    if stride == 1:
        return mask
    pooled = tf.nn.max_pool1d(tf.cast(mask, tf.float32)[..., tf.newaxis], ksize=kernel_size,
                              strides=stride, padding="SAME")
    return pooled[..., 0] > 0.5
