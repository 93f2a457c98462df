"""BuildSfExamples: the world's SF and ad-click impressions of one user -> Examples.

Input: ``(user_id, {"sf": [row lists], "ad": [row lists]})`` from CoGroupByKey, rows carrying
their position (``(row, file, line_number, text)``, see ParseLines). Side inputs: ``profiles``
{user_id: (age_bucket, gender, city_tier, activity_level)}, ``ads`` {ad_id: (category,
title_tokens)}.

``history_sf_keywords`` = the SF keywords the user clicked on days strictly before the
impression's day, most recent first, at most ``max_sf_history``; computed once per distinct
day of the user, not per impression.

Outputs: main ``(day, record)`` (datasets ``sf`` / ``ad_click``, sharded and sorted by
impression id, label ``clicked``); ``tokens``; ``dead_letter`` for an unknown user or ad.
"""
from __future__ import annotations

import itertools

import apache_beam as beam
from apache_beam import pvalue

from beam_pipelines import wire
from beam_pipelines.bundle_counts import TOKENS_TAG, BundleTokenCounts
from beam_pipelines.dead_letter import DEAD_TAG, dead_letter
from beam_pipelines.features import PROFILE_FIELDS


def query_category(tokens) -> str:
    """Category id named by the query's first ``cat_<nn>`` token ("" if none)."""
    for token in tokens:
        if token.startswith("cat_") and token[4:].isdigit():
            return str(int(token[4:]))
    return ""


def _bump(counts: dict, vocab: str, tokens):
    bucket = counts.setdefault(vocab, {})
    for token in tokens:
        bucket[token] = bucket.get(token, 0) + 1


class _BuildFn(beam.DoFn):
    def __init__(self, config):
        self._max_history = config.max_sf_history
        self._max_query = config.max_query_tokens
        self._max_title = config.max_title_tokens

    def start_bundle(self):
        self._tokens = BundleTokenCounts()

    def process(self, element, profiles, ads):
        user_id, groups = element
        sf_rows = sorted(itertools.chain.from_iterable(groups.get("sf", [])), key=lambda r: r[0][:3])
        ad_rows = sorted(itertools.chain.from_iterable(groups.get("ad", [])), key=lambda r: r[0][:3])
        profile = profiles.get(user_id)
        if profile is None:
            for _, path, line_number, text in sf_rows + ad_rows:
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "unknown_user_id", text))
            return
        user = str(user_id)
        user_features = {"user_id": wire.bytes_feature([user.encode()])}
        for name, value in zip(PROFILE_FIELDS, profile):
            user_features[name] = wire.bytes_feature([value.encode()])
        clicks = [(row[0], row[4]) for row, *_ in sf_rows if row[5] == 1]  # (day, keyword), by ts
        history_cache: dict[int, bytes] = {}

        def history(day: int) -> bytes:
            feature = history_cache.get(day)
            if feature is None:
                earlier = [kw for d, kw in clicks if d < day][::-1][: self._max_history]
                feature = history_cache[day] = wire.bytes_feature([kw.encode() for kw in earlier])
            return feature

        counts_by_day: dict = {}

        def common(day, ts, impression_id, query, clicked):
            counts = counts_by_day.setdefault(day, {})
            _bump(counts, "user_id", [user])
            for name, value in zip(PROFILE_FIELDS, profile):
                _bump(counts, name, [value])
            query = query[: self._max_query]
            category = query_category(query)
            _bump(counts, "token", query)
            if category:
                _bump(counts, "category", [category])
            features = dict(user_features)
            features["history_sf_keywords"] = history(day)
            features["query_tokens"] = wire.bytes_feature([t.encode() for t in query])
            features["query_category"] = wire.bytes_feature([category.encode()])
            features["clicked"] = wire.int64_feature([clicked])
            features["impression_id"] = wire.int64_feature([impression_id])
            features["day"] = wire.int64_feature([day])
            return features, counts

        for (day, ts, impression_id, query, keyword, clicked), *_ in sf_rows:
            features, counts = common(day, ts, impression_id, query, clicked)
            features["sf_keyword"] = wire.bytes_feature([keyword.encode()])
            _bump(counts, "token", [keyword])
            yield day, ("sf", str(impression_id), (impression_id,), wire.example(features), (clicked,))

        for (day, ts, impression_id, query, ad_id, position, clicked), path, line_number, text in ad_rows:
            ad = ads.get(ad_id)
            if ad is None:
                yield pvalue.TaggedOutput(DEAD_TAG, dead_letter(path, line_number, "unknown_ad_id", text))
                continue
            category, title = ad
            title = title[: self._max_title]
            features, counts = common(day, ts, impression_id, query, clicked)
            features["ad_id"] = wire.bytes_feature([str(ad_id).encode()])
            features["category"] = wire.bytes_feature([category.encode()])
            features["title_tokens"] = wire.bytes_feature([t.encode() for t in title])
            features["position"] = wire.bytes_feature([str(position).encode()])
            _bump(counts, "ad_id", [str(ad_id)])
            _bump(counts, "category", [category])
            _bump(counts, "token", title)
            _bump(counts, "position", [str(position)])
            yield day, ("ad_click", str(impression_id), (impression_id,), wire.example(features), (clicked,))
        self._tokens.add(counts_by_day)

    def finish_bundle(self):
        yield from self._tokens.flush()


class BuildSfExamples(beam.PTransform):
    def __init__(self, profiles, ads, config):
        super().__init__()
        self._profiles = profiles
        self._ads = ads
        self._config = config

    def expand(self, grouped):
        return grouped | beam.ParDo(_BuildFn(self._config), self._profiles, self._ads).with_outputs(
            TOKENS_TAG, DEAD_TAG, main="records")
