"""Reusable Keras layers of the adpush models (each in a module named for it)."""
