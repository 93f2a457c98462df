"""serving package of adpush. Imports adpush.tfenv first so Keras 2 is selected before TensorFlow."""
from adpush import tfenv as _tfenv  # noqa: F401
