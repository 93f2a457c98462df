"""WriteImpressionShards: checked SF and ad impression lines -> the ``sf`` and ``ad_click``
datasets, built inside their shards.

The same shape as WriteSequenceShards: lines are grouped straight into their user's shard
(``crc32(user_id) % num_shards``), and one DoFn call per shard builds its users and writes its
(dataset, split) files. The only shuffle moves the impression lines (~70 bytes each); the
serialized examples (~420 bytes, with the SF history) never cross one. A shard's examples are
held until they are sorted (~1 GB for a quarter of the default world's ad impressions): scale
``--num_shards`` with the data, as for sequences.

That is what lets the default world (8.3M lines) build on the local runner: FnApiRunner holds
a grouping's values as Python objects until they are consumed, so the old path (group rows by
user, build, group the examples again by shard) peaked at 5.4 GB for a quarter of the world
and was OOM-killed at 21 GB on the whole of it.

Order inside a file: impression id, i.e. time, as a reader that shuffles in blocks of
consecutive records (tfrs_models.input.make_dataset) wants, rather than user by user. Same
input and options -> byte-identical files.

Input: ``sf`` and ``ad`` PCollections of ``(user_id, [lines])``. Outputs: main
``(dataset, split, rows, label_sums)`` per file; ``tokens`` ``(vocab, {token: count})`` of the
train split only.
"""
from __future__ import annotations

import heapq
import os
import struct
import tempfile
import typing
import zlib

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from beam_pipelines.build_sf_examples import EntryCache, build_user_examples
from beam_pipelines.bundle_counts import TOKENS_TAG, TrainTokenCounts
from beam_pipelines.config import SPLITS
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.split_by_day import day_splits
from beam_pipelines.tfrecord import GzipTFRecordWriter
from beam_pipelines.write_deterministic_tfrecords import shard_file
from beam_pipelines.write_sequence_shards import user_shard

DATASETS = ("sf", "ad_click")
_SF, _AD = 0, 1


PACK_LINES = 50_000          # lines per packed element of the shuffle
RUN_ROWS = 400_000           # impressions built and sorted in memory at once (one run)
_RUN_HEADER = struct.Struct("<qI")   # impression id, payload length (a run file's record header)


def _user_of(line: str) -> int:
    """The user id of a checked impression line (its 2nd field; ``int`` = ``parse_id`` there)."""
    return int(line.split(",", 2)[1])


def _pack(lines) -> bytes:
    return zlib.compress("\n".join(lines).encode("utf-8"), 1)


def _unpack(packed: bytes) -> list[str]:
    return zlib.decompress(packed).decode("utf-8").split("\n")


class _PackLinesFn(beam.DoFn):
    """``(user_id, [lines])`` -> ``(shard, (kind, packed lines))``, up to PACK_LINES lines an
    element, packed = the newline-joined lines deflated at level 1 (~5x smaller). The local
    runner holds a shuffle three times over (the stage's encoded output, the grouping table of
    Python objects, the table encoded again per consumer), so it then holds a few thousand
    compact bytes objects instead of one Python object per line; the user ids are read back from
    the lines (field 2)."""

    def __init__(self, kind: int, num_shards: int):
        self._kind, self._num_shards = kind, num_shards

    def start_bundle(self):
        self._lines: dict = {}

    def process(self, element):
        user_id, lines = element
        shard = user_shard(user_id, self._num_shards)
        buffer = self._lines.setdefault(shard, [])
        buffer.extend(lines)
        if len(buffer) >= PACK_LINES:
            yield str(shard), (self._kind, _pack(buffer))
            buffer.clear()

    def finish_bundle(self):
        for shard, buffer in sorted(self._lines.items()):
            if buffer:
                yield GlobalWindows.windowed_value((str(shard), (self._kind, _pack(buffer))))
        self._lines = {}


class _Runs:
    """A shard's (dataset, split) files as sorted runs: the records of RUN_ROWS impressions at a
    time are sorted by impression id and spilled to a local temporary file; a file is the merge
    of its runs (``heapq.merge`` is stable, so equal ids keep user order, as one stable sort
    would). With a single run nothing is spilled. This bounds what a shard holds (it was ~1 GB
    of examples for a quarter of the default world's ad impressions)."""

    def __init__(self):
        self._tmp = None
        self.runs: dict = {}        # (dataset, split) -> [run file paths]
        self.current: dict = {}     # (dataset, split) -> [(impression_id, payload)]
        self.rows = 0

    def add(self, key, impression_id: int, payload: bytes) -> None:
        records = self.current.get(key)
        if records is None:
            records = self.current[key] = []
        records.append((impression_id, payload))
        self.rows += 1

    def spill(self) -> None:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="adpush-impression-runs-")
        header = _RUN_HEADER.pack
        for key, records in self.current.items():
            records.sort(key=lambda r: r[0])
            runs = self.runs.setdefault(key, [])
            path = os.path.join(self._tmp.name, f"{key[0]}-{key[1]}-{len(runs)}")
            with open(path, "wb") as fh:
                for start in range(0, len(records), 4096):
                    fh.write(b"".join([header(i, len(p)) + p for i, p in records[start:start + 4096]]))
            runs.append(path)
        self.current = {}
        self.rows = 0

    def sorted_records(self, key):
        """The key's ``(impression_id, payload)`` in impression-id order."""
        if key not in self.runs:
            records = self.current.pop(key, [])
            records.sort(key=lambda r: r[0])
            return iter(records)
        if key in self.current:
            self.spill()
        return heapq.merge(*[_read_run(path) for path in self.runs[key]], key=lambda r: r[0])

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _read_run(path: str):
    size = _RUN_HEADER.size
    with open(path, "rb", buffering=1 << 20) as fh:
        while True:
            header = fh.read(size)
            if not header:
                return
            impression_id, n = _RUN_HEADER.unpack(header)
            yield impression_id, fh.read(n)


class _BuildShardFn(beam.DoFn):
    def __init__(self, out_dir: str, config):
        self._out_dir = out_dir
        self._config = config
        self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "impression_users")

    def start_bundle(self):
        self._tokens = TrainTokenCounts()

    def process(self, element, window, profiles, ads):
        from apache_beam.io.filesystems import FileSystems

        shard, packs = element
        shard = int(shard)
        users: dict = {}
        for pack in packs:
            if pack is not None:
                kind, packed = pack
                for line in _unpack(packed):
                    user_id = _user_of(line)
                    lines = users.get(user_id)
                    if lines is None:
                        lines = users[user_id] = ([], [])
                    lines[kind].append(line)
        packs = element = None
        splits = day_splits(window[3], self._config)

        def split_of(day: int) -> str:
            return splits[min(max(day, 0), len(splits) - 1)]

        n_shards = self._config.num_shards
        cache = EntryCache(ads, self._config)
        runs = _Runs()
        clicks = {(d, s): 0 for d in DATASETS for s in SPLITS}
        try:
            for user_id in sorted(users):
                sf_lines, ad_lines = users.pop(user_id)
                records, counts = build_user_examples(user_id, sf_lines, ad_lines, profiles[user_id], ads,
                                                      self._config, cache)
                self._users.inc()
                for dataset, day, impression_id, payload, clicked in records:
                    key = (dataset, split_of(day))
                    runs.add(key, impression_id, payload)
                    clicks[key] += clicked
                self._tokens.add(counts, split_of)
                if runs.rows >= RUN_ROWS:
                    runs.spill()
            for dataset in DATASETS:
                for split in SPLITS:
                    path = FileSystems.join(self._out_dir, shard_file(dataset, split, shard, n_shards))
                    writer = GzipTFRecordWriter(path)
                    try:
                        for _, payload in runs.sorted_records((dataset, split)):
                            writer.write(payload)
                    finally:
                        writer.close()
                    beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{dataset}_{split}_written").inc(writer.count)
                    yield dataset, split, writer.count, (clicks[dataset, split],)
        finally:
            runs.close()

    def finish_bundle(self):
        yield from self._tokens.flush()


class WriteImpressionShards(beam.PTransform):
    """``{"sf": ..., "ad": ...}`` of ``(user_id, [lines])`` -> summaries (+ ``tokens``).

    Side inputs: ``window`` (make_window singleton), ``profiles`` {user_id: profile},
    ``ads`` {ad_id: (category, title_tokens)}.
    """

    def __init__(self, out_dir: str, window, config, profiles, ads):
        super().__init__()
        self._out_dir = out_dir
        self._window = window
        self._config = config
        self._profiles = profiles
        self._ads = ads

    def expand(self, inputs):
        n = self._config.num_shards
        tuple_type = typing.Tuple[str, typing.Any]
        sf = inputs["sf"] | "PackSfByShard" >> beam.ParDo(_PackLinesFn(_SF, n)).with_output_types(tuple_type)
        ad = inputs["ad"] | "PackAdByShard" >> beam.ParDo(_PackLinesFn(_AD, n)).with_output_types(tuple_type)
        every_shard = inputs["sf"].pipeline | "EveryShard" >> beam.Create(
            [(str(i), None) for i in range(n)]).with_output_types(tuple_type)
        return (
            (sf, ad, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "BuildAndWrite" >> beam.ParDo(
                _BuildShardFn(self._out_dir, self._config), self._window, self._profiles, self._ads
            ).with_outputs(TOKENS_TAG, main="summaries")
        )
