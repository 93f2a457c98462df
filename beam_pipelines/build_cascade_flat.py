"""BuildCascadeFlat: Ali-CCP rows -> flat ``cascade_flat`` Examples (CTR->CVR without sequences).

Input: ``(split, (row_id, labels, {field: value}))``. Output: ``(split, record)`` and, for the
train split, ``tokens`` ``(vocab, {token: count})`` (vocab = field name).
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from beam_pipelines import wire
from beam_pipelines.bundle_counts import TOKENS_TAG
from apache_beam.transforms.window import GlobalWindows


class _BuildFn(beam.DoFn):
    def __init__(self, fields):
        self._fields = tuple(fields)

    def start_bundle(self):
        self._counts = {}

    def process(self, element):
        split, (row_id, (click, conversion), values) = element
        features = {
            "row_id": wire.bytes_feature([row_id.encode()]),
            "click": wire.int64_feature([click]),
            "conversion": wire.int64_feature([conversion]),
        }
        for field in self._fields:
            value = values.get(field, "0")
            features[field] = wire.bytes_feature([value.encode()])
            if split == "train":
                acc = self._counts.setdefault(field, {})
                acc[value] = acc.get(value, 0) + 1
        yield split, ("cascade_flat", row_id, (row_id,), wire.example(features), (click, conversion))

    def finish_bundle(self):
        counts, self._counts = self._counts, {}
        for field in sorted(counts):
            yield pvalue.TaggedOutput(TOKENS_TAG, GlobalWindows.windowed_value((field, counts[field])))


class BuildCascadeFlat(beam.PTransform):
    def __init__(self, fields):
        super().__init__()
        self._fields = fields

    def expand(self, rows):
        return rows | beam.ParDo(_BuildFn(self._fields)).with_outputs(TOKENS_TAG, main="records")
