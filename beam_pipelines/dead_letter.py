"""Rejected rows: one element per bad input line, never dropped silently.

A dead letter is the tuple ``(file, line_number, reason, line, detail)``; ``line`` is the
original text (undecodable bytes shown as ``\\xNN`` escapes), ``detail`` None or a short text
(the exception of a ``parse_error``, the codec of a broken compressed file). Reasons are stable
snake_case identifiers.
"""
from __future__ import annotations

import apache_beam as beam

DEAD_TAG = "dead_letter"
METRICS_NAMESPACE = "adpush.build_data"
# A line that no parser rule names but that still raised: kept with its exception as detail.
PARSE_ERROR = "parse_error"
# Reasons that say the file itself is broken (read_line_batches): a build with any fails.
FILE_REASONS = ("not_gzip", "truncated_gzip", "corrupt_gzip", "not_bzip2", "truncated_bzip2",
                "corrupt_bzip2")


class BadRow(ValueError):
    """Raised by a line parser; ``reason`` names the rule the row broke."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def dead_letter(file: str, line_number: int, reason: str, line, detail: str | None = None) -> tuple:
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="backslashreplace")
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{reason}").inc()
    return (file, line_number, reason, line, detail)
