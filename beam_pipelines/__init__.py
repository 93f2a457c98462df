"""Beam jobs: raw logs -> TFRecords, vocabularies, spec.json; A/B log aggregation."""
