"""The one place that selects Keras 2 (tf-keras) before TensorFlow is imported.

TFRS 0.7.7 refuses Keras 3, so every adpush package imports this module first (each package
``__init__`` imports ``adpush_core``). It is also the one way the project imports TensorFlow:
``tf = import_tensorflow()``; a test (tests/test_import_graph.py) fails on any other
``import tensorflow`` / ``import tf_keras``. Importing it sets ``TF_USE_LEGACY_KERAS=1`` unless TensorFlow is already loaded;
``import_tensorflow()`` then checks that Keras 2 is really active.
"""
from __future__ import annotations

import os
import sys

KERAS_ENV = "TF_USE_LEGACY_KERAS"

_FIX = (
    "adpush needs Keras 2 (tf-keras), but Keras 3 is active. "
    "Set TF_USE_LEGACY_KERAS=1 before anything imports TensorFlow (e.g. `export TF_USE_LEGACY_KERAS=1`, "
    "or import adpush before tensorflow) and make sure `pip install 'tf-keras==2.21.*'` is installed."
)


class KerasVersionError(RuntimeError):
    """Keras 3 is active where adpush needs tf-keras (Keras 2)."""


def select_legacy_keras() -> None:
    """Set TF_USE_LEGACY_KERAS=1 if TensorFlow has not been imported yet."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(KERAS_ENV, "1")
        # Quiet TF's C++ logging unless the user asked for it (adpush --verbose; adpush.console).
        if os.environ.get("ADPUSH_VERBOSE", "") in ("", "0"):
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def check_keras(tf_module) -> None:
    """Raise KerasVersionError unless ``tf_module.keras`` is Keras 2 (tf_keras).

    TF 2.21's lazy ``tf.keras`` defines no ``__version__``, so this checks where its layers come
    from: ``tf_keras`` under TF_USE_LEGACY_KERAS=1, ``keras`` (3) otherwise.
    """
    module = tf_module.keras.layers.Dense.__module__
    if not module.startswith("tf_keras"):
        raise KerasVersionError(f"{_FIX} (tf.keras layers come from {module}, "
                                f"{KERAS_ENV}={os.environ.get(KERAS_ENV)!r})")


def import_tensorflow():
    """Import TensorFlow with Keras 2 active, or fail with a message saying what to do."""
    select_legacy_keras()
    import tensorflow as tf  # noqa: PLC0415 - deliberately after the environment is set

    check_keras(tf)
    return tf


select_legacy_keras()
