"""The simulated marketplace world, A/B traffic simulator, statistics and reports.

The experiments No.1–No.5 are 001's Table 2; the papers are named in docs/papers.md.
"""
from adpush_core import tfenv as _tfenv  # noqa: F401  (Keras 2 before any TensorFlow import)
