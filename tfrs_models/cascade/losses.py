"""The calibrated multitask loss of 000, Eq. (5)–(7).

``L_f = L_c + α · L_bc`` with ``L_c`` the sum over the two tasks of the mean binary
cross-entropy on every impression (click label; click-and-convert label), and the behavioural
expectation calibrator ``L_bc = mean(max(ŷ_conversion − ŷ_click, 0))`` — the sign as in 000's text
and AITM (its printed Eq. 6 swaps the two; see shared/seeds/README.md).
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow


tf = import_tensorflow()

AITM_DEFAULT_ALPHA = 0.6


def behaviour_calibrator(p_click, p_conversion, reduce: str = "mean"):
    """Eq. (6) with the corrected sign: ``mean(max(p_conversion − p_click, 0))``, a scalar
    (``reduce="sum"``: the sum over the rows)."""
    p_click = tf.cast(tf.reshape(p_click, [-1]), tf.float32)
    p_conversion = tf.cast(tf.reshape(p_conversion, [-1]), tf.float32)
    excess = tf.nn.relu(p_conversion - p_click)
    return tf.reduce_sum(excess) if reduce == "sum" else tf.reduce_mean(excess)


def binary_cross_entropy(labels, probabilities, epsilon: float = 1e-7):
    """Mean BCE of one task, the inner sums of Eq. (5)."""
    y = tf.cast(tf.reshape(labels, [-1]), tf.float32)
    p = tf.clip_by_value(tf.cast(tf.reshape(probabilities, [-1]), tf.float32), epsilon, 1 - epsilon)
    return -tf.reduce_mean(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))


def calibrated_loss(click, p_click, conversion, p_conversion, alpha: float = AITM_DEFAULT_ALPHA):
    """Eq. (7): BCE(click) + BCE(click-and-convert) + α · calibrator, all impressions."""
    return (binary_cross_entropy(click, p_click) + binary_cross_entropy(conversion, p_conversion)
            + alpha * behaviour_calibrator(p_click, p_conversion))
