"""Import TensorFlow with Keras 2 (tf-keras) active, for every module of ``tfrs_models``.

``adpush.tfenv.import_tensorflow`` checks ``tf.keras.__version__``, which TF 2.21's lazy
``tf.keras`` module does not define, so this checks where ``tf.keras`` layers come from instead.
"""
from __future__ import annotations

from adpush import tfenv


def import_tensorflow():
    """TensorFlow with ``tf.keras`` = tf_keras, or ``tfenv.KerasVersionError``."""
    tfenv.select_legacy_keras()
    import tensorflow as tf  # noqa: PLC0415

    if not tf.keras.layers.Dense.__module__.startswith("tf_keras"):
        raise tfenv.KerasVersionError(
            f"tf.keras is {tf.keras.layers.Dense.__module__}, not tf_keras; set "
            f"{tfenv.KERAS_ENV}=1 before importing TensorFlow")
    return tf
