"""Field parsers shared by every source: one definition, so every source rejects a field alike."""
from __future__ import annotations

from beam_pipelines.dead_letter import BadRow

INT64_MAX = 2**63 - 1
_INT64_DIGITS = len(str(INT64_MAX))  # 19


def parse_id(field: str) -> int:
    """A non-negative decimal integer that fits the int64 the TFRecords store.

    ``non_integer_field`` for anything but ASCII digits, ``integer_out_of_range`` above
    2**63 - 1. The length is checked before ``int()``, so a field of any length (Python refuses
    to convert more than 4,300 digits) is a dead letter, never an exception that kills the job.
    """
    if not field.isascii() or not field.isdigit():
        raise BadRow("non_integer_field")
    digits = field.lstrip("0")
    if len(digits) > _INT64_DIGITS:
        raise BadRow("integer_out_of_range")
    value = int(digits or "0")
    if value > INT64_MAX:
        raise BadRow("integer_out_of_range")
    return value
