"""WriteDeterministicTFRecords: records -> ``OUT/<dataset>/<split>-SSSSS-of-NNNNN.tfrecord.gz``.

``WriteToTFRecord(num_shards=N)`` assigns shards round-robin from a random start
(BEAM_NOTES §4), so here a record goes to shard ``crc32(shard_key) % N``, each shard is sorted
by ``sort_key`` and written by one DoFn call under its final name. Every shard file exists,
even empty, so the file set depends only on the options. Same input -> byte-identical files.

Input elements: ``(split, (dataset, shard_key: str, sort_key: tuple, payload: bytes,
labels: tuple[int, ...]))``. Output: ``(dataset, split, rows, label_sums)`` per shard.
"""
from __future__ import annotations

import typing
import zlib

import apache_beam as beam

from beam_pipelines.config import SPLITS
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.tfrecord import write_gzip_tfrecords


def shard_file(dataset: str, split: str, shard: int, num_shards: int) -> str:
    return f"{dataset}/{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"


class _WriteShardFn(beam.DoFn):
    def __init__(self, out_dir: str, num_shards: int):
        self._out_dir = out_dir
        self._num_shards = num_shards

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        key, rows = element
        dataset, split, shard = key.split("/")
        shard = int(shard)
        rows = sorted((r for r in rows if r is not None), key=lambda r: r[0])
        path = FileSystems.join(self._out_dir, shard_file(dataset, split, shard, self._num_shards))
        n = write_gzip_tfrecords(path, (payload for _, payload, _ in rows))
        sums = [sum(col) for col in zip(*(labels for _, _, labels in rows))]
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{dataset}_{split}_written").inc(n)
        yield dataset, split, n, tuple(sums)


class WriteDeterministicTFRecords(beam.PTransform):
    def __init__(self, out_dir: str, datasets, num_shards: int):
        super().__init__()
        self._out_dir = out_dir
        self._datasets = sorted(datasets)
        self._num_shards = num_shards

    def expand(self, records):
        n = self._num_shards

        def key(element):
            split, (dataset, shard_key, sort_key, payload, labels) = element
            shard = zlib.crc32(shard_key.encode()) % n
            # a string key: tuple keys get a different coder after a portable round trip
            return f"{dataset}/{split}/{shard}", (sort_key, payload, labels)

        every_shard = records.pipeline | "EveryShard" >> beam.Create(
            [(f"{d}/{s}/{i}", None) for d in self._datasets for s in SPLITS for i in range(n)]
        ).with_output_types(typing.Tuple[str, typing.Any])
        return (
            (records | "KeyByShard" >> beam.Map(key).with_output_types(typing.Tuple[str, typing.Any]),
             every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(self._out_dir, n))
        )
