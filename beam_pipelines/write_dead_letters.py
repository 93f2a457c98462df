"""WriteDeadLetters: rejected rows -> ``OUT/dead_letter/<reason>-SSSSS-of-NNNNN.jsonl``.

Each line is ``{"file", "line_number", "reason", "line", "detail"}``. A dead letter goes to
shard ``crc32(file:line_number) % num_shards`` of its reason, and each shard is written sorted by
file and line by one DoFn call, streaming (no per-reason string is built). Grouping by reason
alone would put every dead letter of a reason on one worker under one hot key: a bad upload of
a billion rows with one reason would have to fit in one worker's memory. Only shards that
received a dead letter exist, so the file set depends on the input and the options only.

Output: ``(reason, count, relative file path)`` per shard written.
"""
from __future__ import annotations

import json
import typing
import zlib

import apache_beam as beam


def dead_letter_file(reason: str, shard: int, num_shards: int) -> str:
    return f"dead_letter/{reason}-{shard:05d}-of-{num_shards:05d}.jsonl"


class _WriteShardFn(beam.DoFn):
    def __init__(self, out_dir: str, num_shards: int):
        self._out_dir = out_dir
        self._num_shards = num_shards

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        key, rows = element
        reason, shard = key.rsplit("/", 1)
        rows = sorted(rows, key=lambda d: (d[0], d[1]))
        relative = dead_letter_file(reason, int(shard), self._num_shards)
        buffer: list[str] = []
        with FileSystems.create(FileSystems.join(self._out_dir, relative)) as fh:
            for f, n, r, line, detail in rows:
                buffer.append(json.dumps({"file": f, "line_number": n, "reason": r, "line": line,
                                          "detail": detail}, ensure_ascii=False) + "\n")
                if len(buffer) >= 4096:
                    fh.write("".join(buffer).encode("utf-8"))
                    buffer.clear()
            fh.write("".join(buffer).encode("utf-8"))
        yield reason, len(rows), relative


class WriteDeadLetters(beam.PTransform):
    def __init__(self, out_dir: str, num_shards: int = 4):
        super().__init__()
        self._out_dir = out_dir
        self._num_shards = max(1, num_shards)

    def expand(self, dead_letters):
        n = self._num_shards

        def key(d):
            # a string key: tuple keys get a different coder after a portable round trip
            return f"{d[2]}/{zlib.crc32(f'{d[0]}:{d[1]}'.encode()) % n}", d

        return (
            dead_letters
            | "ByReasonShard" >> beam.Map(key).with_output_types(typing.Tuple[str, typing.Any])
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteShardFn(self._out_dir, n))
        )
