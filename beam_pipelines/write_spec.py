"""WriteSpecAndStats: the last step; writes ``OUT/spec.json`` (contracts §2) and ``OUT/stats.json``.

Runs once (``Create([None])``) with the shard, vocabulary, dead-letter and read summaries as side
inputs, so both files are produced by the pipeline itself, on any runner.
"""
from __future__ import annotations

import json

import apache_beam as beam

from beam_pipelines.config import SPLITS
from beam_pipelines.split_by_day import day_splits


def _rates(sums, rows, labels):
    return {label: (sums[i] / rows if rows else 0.0) for i, label in enumerate(labels)}


def compose(source, config, datasets, shard_summaries, vocab_sizes, dead_counts, read_counts,
            window=None):
    """Build the (spec, stats) dicts from the pipeline's summaries."""
    rows = {(d, s): 0 for d in datasets for s in SPLITS}
    sums = {(d, s): [0] * len(datasets[d]["labels"]) for d in datasets for s in SPLITS}
    for dataset, split, n, label_sums in shard_summaries:
        rows[dataset, split] += n
        for i, v in enumerate(label_sums):
            sums[dataset, split][i] += v
    spec_datasets = {}
    for name, ds in sorted(datasets.items()):
        labels = ds["labels"]
        spec_datasets[name] = {
            "proto": ds["proto"],
            "compression": "GZIP",
            "files": {s: f"{name}/{s}-*-of-*.tfrecord.gz" for s in SPLITS},
            "num_shards": config.num_shards,
            "row_counts": {s: rows[name, s] for s in SPLITS},
            "label_rates": {s: _rates(sums[name, s], rows[name, s], labels) for s in SPLITS},
            "labels": labels,
            "key": ds["key"],
            "features": ds["features"],
        }
    vocabularies = {
        name: {"file": f"vocab/{name}.txt", "size": size, "num_oov_buckets": 1,
               "min_count": config.min_count}
        for name, size in sorted(vocab_sizes)
    }
    if window is not None:
        names = day_splits(window[3], config)
        splits = {"by": "day", "day_origin": window[0], "window_start": window[1],
                  "window_end": window[2], "num_days": window[3],
                  "split_seconds": config.split_seconds,
                  "days": {s: [d for d, n in enumerate(names) if n == s] for s in SPLITS}}
    else:
        splits = {"by": "hash", "seed": config.seed,
                  "fractions": dict(zip(SPLITS, config.split_fractions))}
    if config.test_days is not None and window is not None:
        splits["test_days"], splits["valid_days"] = config.test_days, config.valid_days
    elif window is not None:
        splits["fractions"] = dict(zip(SPLITS, config.split_fractions))
    spec = {"format_version": 1, "source": source, "vocabularies": vocabularies,
            "datasets": spec_datasets, "splits": splits}
    rejected = dict(sorted(dead_counts))
    read = dict(sorted(read_counts))
    stats = {
        "source": source,
        "rows_read": {"total": sum(read.values()), "per_file": read},
        "rows_rejected": {"total": sum(rejected.values()), "per_reason": rejected},
        "rows_written": {name: {s: rows[name, s] for s in SPLITS} for name in sorted(datasets)},
        "label_rates": {name: spec_datasets[name]["label_rates"] for name in sorted(datasets)},
        "vocabulary_sizes": {name: v["size"] for name, v in vocabularies.items()},
    }
    return spec, stats


class _WriteFn(beam.DoFn):
    def __init__(self, out_dir, source, config, datasets):
        self._args = (out_dir, source, config, datasets)

    def process(self, _, shard_summaries, vocab_sizes, dead_counts, read_counts, window=None):
        from apache_beam.io.filesystems import FileSystems

        out_dir, source, config, datasets = self._args
        spec, stats = compose(source, config, datasets, shard_summaries, vocab_sizes,
                              dead_counts, read_counts, window)
        for name, payload in (("spec.json", spec), ("stats.json", stats)):
            with FileSystems.create(FileSystems.join(out_dir, name)) as fh:
                fh.write((json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
        yield spec


class WriteSpecAndStats(beam.PTransform):
    def __init__(self, out_dir, source, config, datasets, shard_summaries, vocab_sizes,
                 dead_counts, read_counts, window=None):
        super().__init__()
        self._fn = _WriteFn(out_dir, source, config, datasets)
        self._side = [beam.pvalue.AsList(shard_summaries), beam.pvalue.AsList(vocab_sizes),
                      beam.pvalue.AsList(dead_counts), beam.pvalue.AsList(read_counts)]
        if window is not None:
            self._side.append(window)

    def expand(self, pbegin):
        return pbegin | beam.Create([None]) | beam.ParDo(self._fn, *self._side)
