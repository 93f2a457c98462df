"""ParseLines: line batches -> parsed rows grouped by key, plus dead letters and read tallies.

A ``parser(text, *side_values) -> (key, row)`` raises ``BadRow(reason)`` for a bad line. Empty
lines and undecodable bytes are rejected here, before the parser sees them. Any other exception
a parser raises on a line is a ``parse_error`` dead letter carrying the exception as its detail:
a line can never kill the job. Rows of one batch that share a key leave as one
``(key, [rows])`` element (user-sorted logs give few elements).

Outputs (``with_outputs``): main ``(key, [rows])``; ``dead_letter`` tuples (see dead_letter.py);
``read`` ``(file, tally)`` per batch (TALLY_FIELDS): every line read falls in exactly one of header, rejected,
parsed, and of the parsed rows those that ``is_label_event`` names (Taobao's cart/fav/buy: used
as labels and history, never written as examples) are also counted apart.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from beam_pipelines.dead_letter import DEAD_TAG, METRICS_NAMESPACE, PARSE_ERROR, BadRow, dead_letter

READ_TAG = "read"


# ``read`` elements are ``(file, tally)``, a tally counting that file's lines by what became
# of them, in this order (each line read is exactly one of header, rejected, parsed):
# ``label_events`` and ``side_table_rows`` are parsed rows that are never written as examples:
# Taobao's cart/fav/buy events (labels and history) and the rows of the world's users/ads and
# Ali-CCP's common features (joined into the examples of other files).
TALLY_FIELDS = ("lines", "header", "rejected", "parsed", "label_events", "side_table_rows")
# Job-wide counters of the same (the row-conservation check reads them from the job's metrics).
LINES_READ, HEADER_LINES, LABEL_EVENTS, SIDE_TABLE_ROWS = ("lines_read", "header_lines", "label_events",
                                                            "side_table_rows")


def sum_tallies(tallies) -> tuple:
    """Element-wise sum of tallies (a CombineFn callable: ``CombinePerKey(sum_tallies)``)."""
    total = [0] * len(TALLY_FIELDS)
    for tally in tallies:
        for i, v in enumerate(tally):
            total[i] += v
    return tuple(total)


class _ParseLinesFn(beam.DoFn):
    def __init__(self, parser, header: bytes | None, name: str, key_by_position: bool,
                 attach_position: bool, is_label_event, side_table: bool):
        self._attach_position = attach_position
        self._parser = parser
        self._header = header
        self._key_by_position = key_by_position
        self._is_label_event = is_label_event
        self._side_table = side_table
        counter = beam.metrics.Metrics.counter
        self._lines_read = counter(METRICS_NAMESPACE, f"{name}_lines_read")
        self._rows_ok = counter(METRICS_NAMESPACE, f"{name}_rows_parsed")
        self._total = {k: counter(METRICS_NAMESPACE, k) for k in (LINES_READ, HEADER_LINES, LABEL_EVENTS,
                                                                   SIDE_TABLE_ROWS)}

    def process(self, batch, *side_values):
        path, first, lines = batch[0], batch[1], batch[2]
        parser, header = self._parser, self._header
        groups: dict = {}
        n_ok = n_header = n_dead = n_labels = 0
        for offset, raw in enumerate(lines):
            line_number = first + offset
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            if line_number == 1 and header is not None and line == header:
                n_header += 1
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                n_dead += 1
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "undecodable_bytes", line))
                continue
            if not text.strip():
                n_dead += 1
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "empty_line", text))
                continue
            try:
                key, row = parser(text, *side_values)
            except BadRow as err:
                n_dead += 1
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, err.reason, text))
                continue
            except Exception as err:  # noqa: BLE001 - a line must never kill the job
                n_dead += 1
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(
                    path, line_number, PARSE_ERROR, text, f"{type(err).__name__}: {str(err)[:200]}"))
                continue
            n_ok += 1
            if self._is_label_event is not None and self._is_label_event(row):
                n_labels += 1
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
        n_lines = len(lines)
        if len(batch) > 3:  # a broken compressed file: its last (cut) line or nothing readable
            reason, text = batch[3]
            n_lines += 1
            n_dead += 1
            yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, first, reason, text, f"file {path} is {reason}"))
        n_side = n_ok if self._side_table else 0
        self._lines_read.inc(n_lines)
        self._rows_ok.inc(n_ok)
        for name, n in ((LINES_READ, n_lines), (HEADER_LINES, n_header), (LABEL_EVENTS, n_labels),
                        (SIDE_TABLE_ROWS, n_side)):
            if n:
                self._total[name].inc(n)
        yield pvalue.TaggedOutput(READ_TAG, (path, (n_lines, n_header, n_dead, n_ok, n_labels, n_side)))
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
      is_label_event: module-level ``row -> bool`` for rows that are used as labels but never
        written as examples (counted in the read tally), or None.
      side_table: every parsed row is a side-table row (users, ads, common features).
    """

    def __init__(self, parser, header: bytes | None = None, side_inputs=(), name: str = "rows",
                 key_by_position: bool = False, attach_position: bool = False, is_label_event=None,
                 side_table: bool = False):
        super().__init__()
        self._attach_position = attach_position
        self._key_by_position = key_by_position
        self._parser = parser
        self._header = header
        self._side_inputs = tuple(side_inputs)
        self._name = name
        self._is_label_event = is_label_event
        self._side_table = side_table

    def expand(self, batches):
        return batches | beam.ParDo(
            _ParseLinesFn(self._parser, self._header, self._name, self._key_by_position,
                          self._attach_position, self._is_label_event, self._side_table), *self._side_inputs
        ).with_outputs(DEAD_TAG, READ_TAG, main="rows")
