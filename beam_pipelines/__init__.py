"""Beam jobs: raw logs -> TFRecords, vocabularies, spec.json; A/B log aggregation."""
from adpush_core import tfenv as _tfenv  # noqa: F401  (Keras 2 before any TensorFlow import)
