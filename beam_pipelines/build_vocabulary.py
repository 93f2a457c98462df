"""BuildVocabulary: token counts of the train split -> ``vocab/<name>.txt`` (pure Beam).

Input: ``(vocab_name, {token: count})`` partial counts. Tokens with ``count >= min_count`` are
written one per line, count descending then token ascending; empty tokens and tokens holding a
line break are dropped (the file is line-based). Readers add padding and OOV (contracts §2).
Each file is written by one DoFn call, so its order never depends on fusion (BEAM_NOTES §4).
Output: ``(vocab_name, size)``.
"""
from __future__ import annotations

import apache_beam as beam

from beam_pipelines.dead_letter import METRICS_NAMESPACE


class MergeCounts(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, counts):
        for token, n in counts.items():
            acc[token] = acc.get(token, 0) + n
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        merged = next(accs)
        for acc in accs:
            self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc


def vocabulary_tokens(counts: dict[str, int], min_count: int) -> list[str]:
    kept = [(-n, t) for t, n in counts.items()
            if n >= min_count and t and "\n" not in t and "\r" not in t]
    return [t for _, t in sorted(kept)]


class _WriteVocabularyFn(beam.DoFn):
    def __init__(self, out_dir: str, min_count: int):
        self._out_dir = out_dir
        self._min_count = min_count

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        name, counts = element
        tokens = vocabulary_tokens(counts, self._min_count)
        with FileSystems.create(FileSystems.join(self._out_dir, "vocab", f"{name}.txt")) as fh:
            fh.write("".join(t + "\n" for t in tokens).encode("utf-8"))
        beam.metrics.Metrics.gauge(METRICS_NAMESPACE, f"vocab_size_{name}").set(len(tokens))
        yield name, len(tokens)


class BuildVocabulary(beam.PTransform):
    """See the module docstring; ``names`` are written even when no token reached them."""

    def __init__(self, out_dir: str, names, min_count: int):
        super().__init__()
        self._out_dir = out_dir
        self._names = sorted(names)
        self._min_count = min_count

    def expand(self, partial_counts):
        empty = partial_counts.pipeline | "AllVocabularies" >> beam.Create([(n, {}) for n in self._names])
        return (
            (partial_counts, empty)
            | "WithEmpty" >> beam.Flatten()
            | "Count" >> beam.CombinePerKey(MergeCounts())
            | "Write" >> beam.ParDo(_WriteVocabularyFn(self._out_dir, self._min_count))
        )
