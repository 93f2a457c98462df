"""Cascade (click → conversion) models, one per module."""
