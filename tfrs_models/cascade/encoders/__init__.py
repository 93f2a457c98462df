"""Sequence encoders: each maps an embedded behaviour sequence to per-task interest vectors."""
