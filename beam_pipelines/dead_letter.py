"""Rejected rows: one element per bad input line, never dropped silently.

A dead letter is the tuple ``(file, line_number, reason, line)``; ``line`` is the original text
(undecodable bytes shown as ``\\xNN`` escapes). Reasons are stable snake_case identifiers.
"""
from __future__ import annotations

import apache_beam as beam

DEAD_TAG = "dead_letter"
METRICS_NAMESPACE = "adpush.build_data"


class BadRow(ValueError):
    """Raised by a line parser; ``reason`` names the rule the row broke."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def dead_letter(file: str, line_number: int, reason: str, line) -> tuple:
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="backslashreplace")
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{reason}").inc()
    return (file, line_number, reason, line)
