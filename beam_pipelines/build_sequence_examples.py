"""BuildSequenceExamples: ``(user_id, iterable of event lists)`` -> sequence records.

Outputs: main ``(day, record)`` with record as WriteDeterministicTFRecords expects (dataset
``sequence``, sharded by user, sorted by (user, ts, index), labels (click, conversion));
``tokens`` ``(day, (vocab, {token: count}))`` for BuildVocabulary.
Side inputs: ``window`` singleton (split_by_day.make_window); optional ``profiles`` dict
{user_id: (age_bucket, gender, city_tier, activity_level)} and ``ads`` dict
{ad_id: (category, title_tokens)} (world source: the candidate's ``title_tokens``).
"""
from __future__ import annotations

import itertools

import apache_beam as beam

from beam_pipelines.bundle_counts import TOKENS_TAG, BundleTokenCounts
from beam_pipelines.dead_letter import METRICS_NAMESPACE
from beam_pipelines.features import PROFILE_FIELDS
from beam_pipelines.sequence_examples import build_user_sequences


def profile_of(user_id, profiles) -> dict[str, str]:
    """The user's profile features; empty strings (index 0 for readers) if users.csv lacks the user."""
    values = profiles.get(user_id)
    if values is None:
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "sequence_user_without_profile").inc()
        values = ("",) * len(PROFILE_FIELDS)
    return dict(zip(PROFILE_FIELDS, values))


def titles_of(events, ads) -> dict:
    """{item_id: title tokens} of the user's items found in the catalogue ``ads``; an item
    missing from it is counted and gets an empty title."""
    titles = {}
    for event in events:
        item = event[1]
        if item in titles:
            continue
        ad = ads.get(item)
        if ad is None:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, "sequence_item_without_title").inc()
            titles[item] = ()
        else:
            titles[item] = ad[1]
    return titles


class _BuildFn(beam.DoFn):
    def __init__(self, max_history: int, with_profile: bool, with_titles: bool = False,
                 max_title_tokens: int = 16):
        self._max_history = max_history
        self._with_profile = with_profile
        self._with_titles = with_titles
        self._max_title_tokens = max_title_tokens
        self._users = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "sequence_users")

    def start_bundle(self):
        self._tokens = BundleTokenCounts()

    def process(self, element, window, profiles=None, ads=None):
        user_id, event_lists = element
        events = list(itertools.chain.from_iterable(event_lists))
        profile = profile_of(user_id, profiles) if self._with_profile else None
        titles = titles_of(events, ads) if self._with_titles else None
        records, counts = build_user_sequences(user_id, events, window[0], self._max_history, profile,
                                               titles=titles, max_title_tokens=self._max_title_tokens)
        self._users.inc()
        self._tokens.add(counts)
        shard_key = str(user_id)
        for day, ts, index, click, conversion, payload in records:
            yield day, ("sequence", shard_key, (user_id, ts, index), payload, (click, conversion))

    def finish_bundle(self):
        yield from self._tokens.flush()


class BuildSequenceExamples(beam.PTransform):
    def __init__(self, window, max_history: int, profiles=None, ads=None, max_title_tokens: int = 16):
        super().__init__()
        self._window = window
        self._max_history = max_history
        self._profiles = profiles
        self._ads = ads
        self._max_title_tokens = max_title_tokens

    def expand(self, users):
        side_kw = {k: v for k, v in (("profiles", self._profiles), ("ads", self._ads)) if v is not None}
        return users | beam.ParDo(
            _BuildFn(self._max_history, self._profiles is not None, self._ads is not None,
                     self._max_title_tokens), self._window, **side_kw
        ).with_outputs(TOKENS_TAG, main="records")
