"""serving package of adpush. Imports adpush_core first so Keras 2 is selected before TensorFlow."""
from adpush_core import tfenv as _tfenv  # noqa: F401
