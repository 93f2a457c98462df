"""ParseLines: line batches -> parsed rows grouped by key, plus dead letters and read counts.

A ``parser(text, *side_values) -> (key, row)`` raises ``BadRow(reason)`` for a bad line. Empty
lines and undecodable bytes are rejected here, before the parser sees them. Rows of one batch
that share a key leave as one ``(key, [rows])`` element (user-sorted logs give few elements).

Outputs (``with_outputs``): main ``(key, [rows])``; ``dead_letter`` tuples (see dead_letter.py);
``read`` ``(file, lines_read)`` per batch.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from beam_pipelines.dead_letter import DEAD_TAG, METRICS_NAMESPACE, BadRow, dead_letter

READ_TAG = "read"


class _ParseLinesFn(beam.DoFn):
    def __init__(self, parser, header: bytes | None, name: str, key_by_position: bool,
                 attach_position: bool):
        self._attach_position = attach_position
        self._parser = parser
        self._header = header
        self._key_by_position = key_by_position
        self._lines_read = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{name}_lines_read")
        self._rows_ok = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{name}_rows_parsed")

    def process(self, batch, *side_values):
        path, first, lines = batch
        parser, header = self._parser, self._header
        groups: dict = {}
        n_ok = 0
        for offset, raw in enumerate(lines):
            line_number = first + offset
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            if line_number == 1 and header is not None and line == header:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "undecodable_bytes", line))
                continue
            if not text.strip():
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "empty_line", text))
                continue
            try:
                key, row = parser(text, *side_values)
            except BadRow as err:
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, err.reason, text))
                continue
            n_ok += 1
            if self._attach_position:
                row = (row, path, line_number, text)
            if self._key_by_position:
                yield (path, line_number), (key, row)
                continue
            rows = groups.get(key)
            if rows is None:
                groups[key] = [row]
            else:
                rows.append(row)
        self._lines_read.inc(len(lines))
        self._rows_ok.inc(n_ok)
        yield pvalue.TaggedOutput(READ_TAG, (path, len(lines)))
        yield from groups.items()


class ParseLines(beam.PTransform):
    """Apply ``parser`` to every line; see the module docstring for the outputs.

    Args:
      parser: module-level function ``(text, *side_values) -> (key, row)``.
      header: the exact first line of a file with a header (skipped there only), or None.
      side_inputs: Beam side inputs passed to the parser after the text (e.g. the window).
      key_by_position: emit ``((file, line_number), (key, row))`` per row instead of groups
        (for sources whose rows have no id of their own).
      attach_position: rows become ``(row, file, line_number, text)`` so that a later step
        can still dead-letter them (e.g. an impression whose user is unknown).
    """

    def __init__(self, parser, header: bytes | None = None, side_inputs=(), name: str = "rows",
                 key_by_position: bool = False, attach_position: bool = False):
        super().__init__()
        self._attach_position = attach_position
        self._key_by_position = key_by_position
        self._parser = parser
        self._header = header
        self._side_inputs = tuple(side_inputs)
        self._name = name

    def expand(self, batches):
        return batches | beam.ParDo(
            _ParseLinesFn(self._parser, self._header, self._name, self._key_by_position,
                          self._attach_position), *self._side_inputs
        ).with_outputs(DEAD_TAG, READ_TAG, main="rows")
