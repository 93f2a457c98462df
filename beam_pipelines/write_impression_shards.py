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

import typing

import apache_beam as beam

from beam_pipelines.build_sf_examples import build_user_examples
from beam_pipelines.bundle_counts import TOKENS_TAG, TrainTokenCounts
from beam_pipelines.config import SPLITS
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.split_by_day import day_splits
from beam_pipelines.tfrecord import write_gzip_tfrecords
from beam_pipelines.write_deterministic_tfrecords import shard_file
from beam_pipelines.write_sequence_shards import user_shard

DATASETS = ("sf", "ad_click")
_SF, _AD = 0, 1


class _BuildShardFn(beam.DoFn):
    def __init__(self, out_dir: str, config):
        self._out_dir = out_dir
        self._config = config
        self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "impression_users")

    def start_bundle(self):
        self._tokens = TrainTokenCounts()

    def process(self, element, window, profiles, ads):
        from apache_beam.io.filesystems import FileSystems

        shard, batches = element
        shard = int(shard)
        users: dict = {}
        for batch in batches:
            if batch is not None:
                user_id, kind, lines = batch
                users.setdefault(user_id, ([], []))[kind].extend(lines)
        splits = day_splits(window[3], self._config)

        def split_of(day: int) -> str:
            return splits[min(max(day, 0), len(splits) - 1)]

        n_shards = self._config.num_shards
        files = {(d, s): [] for d in DATASETS for s in SPLITS}
        for user_id in sorted(users):
            sf_lines, ad_lines = users.pop(user_id)
            records, counts = build_user_examples(user_id, sf_lines, ad_lines, profiles[user_id], ads,
                                                  self._config)
            self._users.inc()
            for dataset, day, impression_id, payload, clicked in records:
                files[dataset, split_of(day)].append((impression_id, payload, clicked))
            self._tokens.add(counts, split_of)
        for (dataset, split), records in files.items():
            records.sort(key=lambda r: r[0])
            path = FileSystems.join(self._out_dir, shard_file(dataset, split, shard, n_shards))
            n = write_gzip_tfrecords(path, (payload for _, payload, _ in records))
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{dataset}_{split}_written").inc(n)
            yield dataset, split, n, (sum(clicked for _, _, clicked in records),)
            records.clear()

    def finish_bundle(self):
        yield from self._tokens.flush()


def _keyed(kind: int, n: int):
    def key(element):
        user_id, lines = element
        return str(user_shard(user_id, n)), (user_id, kind, lines)
    return key


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
        sf = inputs["sf"] | "KeySfByShard" >> beam.Map(_keyed(_SF, n)).with_output_types(tuple_type)
        ad = inputs["ad"] | "KeyAdByShard" >> beam.Map(_keyed(_AD, n)).with_output_types(tuple_type)
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
