"""ParseBehaviourEvents: UserBehavior lines -> ``(user_id, [(ts, item, category, behaviour)])``.

Rejects (dead letter + counter): wrong column count, non-integer ids or timestamps, unknown
behaviour, timestamps outside the window, empty lines, undecodable bytes.
"""
from __future__ import annotations

import apache_beam as beam

from beam_pipelines.parse_lines import ParseLines
from beam_pipelines.sources.behaviour import is_label_event, parse_behaviour


class ParseBehaviourEvents(beam.PTransform):
    """Args: window: singleton side input from split_by_day.make_window; header: the exact header
    line to skip at line 1 (world's behaviour.csv) or None (Taobao has none)."""

    def __init__(self, window, header: bytes | None = None):
        super().__init__()
        self._window = window
        self._header = header

    def expand(self, batches):
        return batches | ParseLines(parse_behaviour, self._header, side_inputs=[self._window],
                                    name="behaviour", is_label_event=is_label_event)
