"""WriteSequenceShards: parsed behaviour -> the ``sequence`` dataset, built inside its shards.

Equivalent (byte for byte, see test_transforms) to BuildSequenceExamples -> SplitByDay ->
WriteDeterministicTFRecords, but the only shuffle moves the compact parsed events: users are
grouped straight into their shard (``crc32(user_id) % num_shards``), and one DoFn call per shard
builds its users in id order and streams each record to its split's file. The serialized
examples (~1.7 kB each at 50 history steps) never cross a shuffle; that is what brings Beam
from ~0.4x to the plain loop's speed range (bench/beam_bench.py).

Input: ``(user_id, [events])`` from ParseBehaviourEvents. Side inputs: ``window``; optional
``profiles`` {user_id: profile} and ``ads`` {ad_id: (category, title_tokens)} (world source:
the candidate's ``title_tokens``). Outputs: main
``(dataset, split, rows, label_sums)`` per file; ``tokens`` ``(vocab, {token: count})`` of the
train split only.
"""
from __future__ import annotations

import typing
import zlib

import apache_beam as beam

from beam_pipelines.build_sequence_examples import profile_of, titles_of
from beam_pipelines.bundle_counts import TOKENS_TAG, TrainTokenCounts
from beam_pipelines.config import SPLITS
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.sequence_examples import build_user_sequences
from beam_pipelines.split_by_day import day_splits
from beam_pipelines.tfrecord import GzipTFRecordWriter
from beam_pipelines.write_deterministic_tfrecords import shard_file


def user_shard(user_id, num_shards: int) -> int:
    return zlib.crc32(str(user_id).encode()) % num_shards


class _BuildShardFn(beam.DoFn):
    def __init__(self, out_dir: str, config, with_profile: bool, with_titles: bool = False):
        self._out_dir = out_dir
        self._config = config
        self._with_profile = with_profile
        self._with_titles = with_titles
        self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "sequence_users")

    def start_bundle(self):
        self._tokens = TrainTokenCounts()

    def process(self, element, window, profiles=None, ads=None):
        from apache_beam.io.filesystems import FileSystems

        shard, batches = element
        shard = int(shard)
        users: dict = {}
        for batch in batches:
            if batch is not None:
                users.setdefault(batch[0], []).extend(batch[1])
        splits = day_splits(window[3], self._config)
        n_shards = self._config.num_shards
        writers = {s: GzipTFRecordWriter(FileSystems.join(self._out_dir, shard_file("sequence", s, shard, n_shards)))
                   for s in SPLITS}
        sums = {s: [0, 0] for s in SPLITS}
        for user_id in sorted(users):
            profile = profile_of(user_id, profiles) if self._with_profile else None
            titles = titles_of(users[user_id], ads) if self._with_titles else None
            records, counts = build_user_sequences(user_id, users[user_id], window[0],
                                                   self._config.max_history, profile,
                                                   self._config.split_seconds, titles,
                                                   self._config.max_title_tokens)
            self._users.inc()
            for day, _, _, click, conversion, payload in records:
                split = splits[day]
                writers[split].write(payload)
                sums[split][0] += click
                sums[split][1] += conversion
            self._tokens.add(counts, splits.__getitem__)
        for split in SPLITS:
            writers[split].close()
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"sequence_{split}_written").inc(writers[split].count)
            yield "sequence", split, writers[split].count, tuple(sums[split])

    def finish_bundle(self):
        yield from self._tokens.flush()


class WriteSequenceShards(beam.PTransform):
    def __init__(self, out_dir: str, window, config, profiles=None, ads=None):
        super().__init__()
        self._out_dir = out_dir
        self._window = window
        self._config = config
        self._profiles = profiles
        self._ads = ads

    def expand(self, parsed):
        n = self._config.num_shards
        keyed = parsed | "KeyByShard" >> beam.Map(
            lambda kv: (str(user_shard(kv[0], n)), kv)).with_output_types(typing.Tuple[str, typing.Any])
        every_shard = parsed.pipeline | "EveryShard" >> beam.Create(
            [(str(i), None) for i in range(n)]).with_output_types(typing.Tuple[str, typing.Any])
        side = [self._window]
        side_kw = {k: v for k, v in (("profiles", self._profiles), ("ads", self._ads)) if v is not None}
        return (
            (keyed, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "BuildAndWrite" >> beam.ParDo(
                _BuildShardFn(self._out_dir, self._config, self._profiles is not None,
                              self._ads is not None), *side, **side_kw
            ).with_outputs(TOKENS_TAG, main="summaries")
        )
