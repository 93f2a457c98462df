"""WriteImpressionShards: checked SF and ad impression lines -> the ``sf`` and ``ad_click``
datasets, built inside their shards.

The same shape as WriteSequenceShards: lines are grouped straight into their user's shard
(``crc32(user_id) % num_shards``), and one DoFn call per shard builds its rows and writes its
(dataset, split) files. The only shuffle moves the impression lines (~70 bytes each); the
serialized examples (~420 bytes, with the SF history) never cross one. A shard holds its lines
as numpy columns (~50 bytes a row, impression_columns.py) and writes each example as it is
built, in file order: scale ``--num_shards`` with the data, as for sequences.

That is what lets the default world (8.3M lines) build on the local runner: FnApiRunner holds
a grouping's values as Python objects until they are consumed, so the old path (group rows by
user, build, group the examples again by shard) peaked at 5.4 GB for a quarter of the world
and was OOM-killed at 21 GB on the whole of it.

Order inside a file: impression id, i.e. time, as a reader that shuffles in blocks of
consecutive records (tfrs_models.input.make_dataset) wants, rather than user by user (ties: user
id, day, ts, then the order the lines came in). Same input and options -> byte-identical files.

Input: ``sf`` and ``ad`` PCollections of ``(user_id, [lines])``. Outputs: main
``(dataset, split, rows, label_sums)`` per file; ``tokens`` ``(vocab, {token: count})`` of the
train split only.
"""
from __future__ import annotations

import typing
import zlib

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from beam_pipelines.bundle_counts import TOKENS_TAG, TrainTokenCounts
from beam_pipelines.config import SPLITS
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.impression_columns import (AD_COLUMNS, SF_COLUMNS, ImpressionColumns, shard_records,
                                               shard_token_counts)
from beam_pipelines.split_by_day import day_splits
from beam_pipelines.tfrecord import GzipTFRecordWriter
from beam_pipelines.write_deterministic_tfrecords import shard_file
from beam_pipelines.write_sequence_shards import user_shard

DATASETS = ("sf", "ad_click")
_SF, _AD = 0, 1


PACK_LINES = 50_000          # lines per packed element of the shuffle


def _pack(lines) -> bytes:
    return zlib.compress("\n".join(lines).encode("utf-8"), 1)


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
        sf, ad = ImpressionColumns(SF_COLUMNS), ImpressionColumns(AD_COLUMNS)
        for pack in packs:
            if pack is not None:
                kind, packed = pack
                (sf if kind == _SF else ad).add_text(zlib.decompress(packed))
        packs = element = None
        sf.finish()
        ad.finish()
        splits = day_splits(window[3], self._config)

        def split_of(day: int) -> str:
            return splits[min(max(day, 0), len(splits) - 1)]

        self._users.inc(len(np.union1d(sf.columns["user_id"], ad.columns["user_id"])))
        self._tokens.add_counts(shard_token_counts(sf, ad, profiles, ads, self._config,
                                                   lambda day: split_of(day) == "train"))
        n_shards = self._config.num_shards
        writers = {(dataset, split): GzipTFRecordWriter(
            FileSystems.join(self._out_dir, shard_file(dataset, split, shard, n_shards)))
            for dataset in DATASETS for split in SPLITS}
        clicks = {key: 0 for key in writers}
        split_of_day: dict = {}
        try:
            for dataset, day, _, payload, clicked in shard_records(sf, ad, profiles, ads, self._config):
                split = split_of_day.get(day)
                if split is None:
                    split = split_of_day[day] = split_of(day)
                writers[dataset, split].write(payload)
                clicks[dataset, split] += clicked
        finally:
            for writer in writers.values():
                writer.close()
        for (dataset, split), writer in writers.items():
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{dataset}_{split}_written").inc(writer.count)
            yield dataset, split, writer.count, (clicks[dataset, split],)

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
