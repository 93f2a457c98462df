"""WriteSpecAndStats: the last step; writes ``OUT/spec.json`` (contracts §2) and ``OUT/stats.json``.

Runs once (``Create([None])``) with the shard, vocabulary, dead-letter and read summaries as side
inputs, so both files are produced by the pipeline itself, on any runner.
"""
from __future__ import annotations

import json

import apache_beam as beam

from beam_pipelines.config import SPLITS
from beam_pipelines.parse_lines import TALLY_FIELDS, sum_tallies
from beam_pipelines.split_by_day import day_splits
from beam_pipelines.write_deterministic_tfrecords import shard_file


def _rates(sums, rows, labels):
    return {label: (sums[i] / rows if rows else 0.0) for i, label in enumerate(labels)}


def compose(source, config, datasets, shard_summaries, vocab_sizes, dead_counts, read_counts,
            window=None):
    """Build the (spec, stats) dicts from the pipeline's summaries.

    ``shard_summaries``: ``(dataset, split, rows, label_sums)`` per file written (every shard of
    every split writes one, even empty); ``dead_counts``: ``(reason, count, file)`` per dead-letter
    shard; ``read_counts``: ``(input file, tally)`` (parse_lines.TALLY_FIELDS).
    """
    rows = {(d, s): 0 for d in datasets for s in SPLITS}
    sums = {(d, s): [0] * len(datasets[d]["labels"]) for d in datasets for s in SPLITS}
    files_written = {(d, s): 0 for d in datasets for s in SPLITS}
    for dataset, split, n, label_sums in shard_summaries:
        rows[dataset, split] += n
        files_written[dataset, split] += 1
        for i, v in enumerate(label_sums):
            sums[dataset, split][i] += v
    wrong = {k: n for k, n in files_written.items() if n != config.num_shards}
    if wrong:  # the file list below would not be what was written
        raise ValueError(f"expected {config.num_shards} files per dataset split, the writers reported {wrong}")
    spec_datasets = {}
    for name, ds in sorted(datasets.items()):
        labels = ds["labels"]
        spec_datasets[name] = {
            "proto": ds["proto"],
            "compression": "GZIP",
            # the exact files written, relative to spec.json (readers never glob: a file left
            # by an earlier build in the same folder is not part of this one)
            "files": {s: [shard_file(name, s, i, config.num_shards) for i in range(config.num_shards)]
                      for s in SPLITS},
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
    rejected: dict = {}
    for reason, n, _ in dead_counts:
        rejected[reason] = rejected.get(reason, 0) + n
    rejected = dict(sorted(rejected.items()))
    tallies = {path: dict(zip(TALLY_FIELDS, tally)) for path, tally in sorted(read_counts)}
    total = dict(zip(TALLY_FIELDS, sum_tallies(t for _, t in read_counts)))
    written = sum(rows.values())
    accounting = {
        "lines_read": total["lines"],
        "header_lines": total["header"],
        "rejected": sum(rejected.values()),
        "written": written,
        "label_events": total["label_events"],
        "side_table_rows": total["side_table_rows"],
    }
    accounting["unaccounted"] = accounting["lines_read"] - sum(
        accounting[k] for k in ("header_lines", "rejected", "written", "label_events", "side_table_rows"))
    stats = {
        "source": source,
        "rows_read": {"total": total["lines"], "per_file": {p: t["lines"] for p, t in tallies.items()}},
        "rows_rejected": {"total": sum(rejected.values()), "per_reason": rejected,
                          "per_file_at_parse": {p: t["rejected"] for p, t in tallies.items()},
                          "files": sorted(f for _, _, f in dead_counts)},
        # every line read is one of: a header, a dead letter, an example written, a label event
        # (Taobao/world behaviour: a cart/fav/buy, used for labels and history), or a side-table
        # row (users, ads, common features); "unaccounted" is 0 when nothing was lost
        "rows_accounting": accounting,
        "per_file": tallies,
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
