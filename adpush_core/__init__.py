"""The bottom layer of adpush: user errors and the TensorFlow/Keras set-up.

Every package may import this one, and it imports none of them (README, "Packages and their
imports"). Importing it selects Keras 2 (tf-keras) before anything loads TensorFlow.
"""
from adpush_core import tfenv as _tfenv  # noqa: F401
