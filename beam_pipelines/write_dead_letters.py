"""WriteDeadLetters: rejected rows -> ``OUT/dead_letter/<reason>.jsonl`` sorted by file and line.

Each line is ``{"file", "line_number", "reason", "line"}``. Output: ``(reason, count)``.
"""
from __future__ import annotations

import json

import apache_beam as beam


class _WriteReasonFn(beam.DoFn):
    def __init__(self, out_dir: str):
        self._out_dir = out_dir

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        reason, rows = element
        rows = sorted(rows)
        path = FileSystems.join(self._out_dir, "dead_letter", f"{reason}.jsonl")
        with FileSystems.create(path) as fh:
            fh.write("".join(
                json.dumps({"file": f, "line_number": n, "reason": r, "line": line},
                           ensure_ascii=False) + "\n"
                for f, n, r, line in rows
            ).encode("utf-8"))
        yield reason, len(rows)


class WriteDeadLetters(beam.PTransform):
    def __init__(self, out_dir: str):
        super().__init__()
        self._out_dir = out_dir

    def expand(self, dead_letters):
        return (
            dead_letters
            | "ByReason" >> beam.Map(lambda d: (d[2], d))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteReasonFn(self._out_dir))
        )
