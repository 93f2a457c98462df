"""The world's SF and ad-click impressions -> ``sf`` / ``ad_click`` Examples: what they hold.

``reference_user_examples`` builds one user's Examples feature by feature: the definition that
impression_columns.shard_records, which WriteImpressionShards runs on a shard's columns, is
tested against. The pieces they share are here: the sorted keys, the serialized map entries
that repeat (``EntryCache``) and the fixed entries between the variable ones (``_segments``).

The user's click history (001 characterises a user by it), both strictly before the
impression's day, computed once per distinct day of the user, not per impression:

- ``history_sf_keywords``: the SF keywords the user clicked, most recent first, at most
  ``max_sf_history``;
- ``history_ad_title_tokens``: the title tokens of the ads the user clicked, most recent ad
  first (each title in its own order), at most ``max_ad_history_tokens`` tokens.
"""
from __future__ import annotations

from beam_pipelines import wire
from beam_pipelines.features import PROFILE_FIELDS
from beam_pipelines.sources.world import parse_ad_impression, parse_sf_impression


def query_category(tokens) -> str:
    """Category id named by the query's first ``cat_<digits>`` token, ASCII digits only, leading
    zeros dropped ("" if none); tfrs_models/selling_point/export.py derives it the same way in the graph."""
    for token in tokens:
        digits = token[4:]
        if token.startswith("cat_") and digits.isascii() and digits.isdigit():
            return str(int(digits))
    return ""


def _bump(counts: dict, vocab: str, tokens):
    bucket = counts.setdefault(vocab, {})
    for token in tokens:
        bucket[token] = bucket.get(token, 0) + 1


_SF_KEYS = sorted(("user_id", *PROFILE_FIELDS, "history_sf_keywords", "history_ad_title_tokens", "query_tokens",
                   "query_category", "clicked", "impression_id", "day", "sf_keyword"))
_AD_KEYS = sorted(("user_id", *PROFILE_FIELDS, "history_sf_keywords", "history_ad_title_tokens", "query_tokens",
                   "query_category", "clicked", "impression_id", "day", "ad_id", "category", "title_tokens",
                   "position"))
_CLICKED = [wire.map_entry("clicked", wire.int64_feature([v])) for v in (0, 1)]


_SF_VARIABLE = ("clicked", "impression_id", "query_category", "query_tokens", "sf_keyword")
_AD_VARIABLE = ("ad_id", "category", "clicked", "impression_id", "position", "query_category", "query_tokens",
                "title_tokens")


def _segments(keys, variable, fixed: dict) -> list[bytes]:
    """The joined fixed entries between the variable ones (``len(variable) + 1`` pieces), for
    an Example whose keys are ``keys`` (sorted) and whose ``variable`` keys (in key order)
    change from row to row."""
    segments, current = [], []
    for key in keys:
        if key in variable:
            segments.append(b"".join(current))
            current = []
        else:
            current.append(fixed[key])
    segments.append(b"".join(current))
    return segments


assert [k for k in _SF_KEYS if k in _SF_VARIABLE] == list(_SF_VARIABLE)
assert [k for k in _AD_KEYS if k in _AD_VARIABLE] == list(_AD_VARIABLE)
_IMPRESSION_ENTRIES = {n: wire.map_entry("impression_id", wire.int64_feature([(1 << (7 * (n - 1))) if n > 1 else 0]))
                       [:-n] for n in range(1, 11)}   # the entry up to its varint, per varint length


def _impression_entry(impression_id: int) -> bytes:
    """``map_entry("impression_id", int64_feature([impression_id]))`` (ids beyond the varint table)."""
    encoded = wire.varint(impression_id)
    return _IMPRESSION_ENTRIES[len(encoded)] + encoded


class EntryCache:
    """Serialized map entries that repeat across rows and users, encoded once: per query (its
    tokens and category), per ad (id, category, title), per position, per day, per SF keyword.
    Bounded by the world's vocabularies, not by its rows. One cache serves one ``ads`` table and
    one config (WriteImpressionShards makes one per shard)."""

    def __init__(self, ads: dict, config):
        self.ads, self.max_query, self.max_title = ads, config.max_query_tokens, config.max_title_tokens
        self.query: dict = {}
        self.ad: dict = {}
        self.position: dict = {}
        self.day: dict = {}
        self.keyword: dict = {}

    def query_entries(self, query_field: str):
        got = self.query.get(query_field)
        if got is None:
            query = tuple(query_field.split())[:self.max_query]
            category = query_category(query)
            got = self.query[query_field] = (
                query, category,
                wire.map_entry("query_tokens", wire.bytes_feature([t.encode() for t in query])),
                wire.map_entry("query_category", wire.bytes_feature([category.encode()])))
        return got

    def ad_entries(self, ad_id: int):
        got = self.ad.get(ad_id)
        if got is None:
            category, title = self.ads[ad_id]
            title = title[:self.max_title]
            got = self.ad[ad_id] = (
                category, title,
                wire.map_entry("ad_id", wire.bytes_feature([str(ad_id).encode()])),
                wire.map_entry("category", wire.bytes_feature([category.encode()])),
                wire.map_entry("title_tokens", wire.bytes_feature([t.encode() for t in title])))
        return got

    def position_entry(self, position: int) -> bytes:
        got = self.position.get(position)
        if got is None:
            got = self.position[position] = wire.map_entry("position", wire.bytes_feature([str(position).encode()]))
        return got

    def day_entry(self, day: int) -> bytes:
        got = self.day.get(day)
        if got is None:
            got = self.day[day] = wire.map_entry("day", wire.int64_feature([day]))
        return got

    def keyword_entry(self, keyword: str) -> bytes:
        got = self.keyword.get(keyword)
        if got is None:
            got = self.keyword[keyword] = wire.map_entry("sf_keyword", wire.bytes_feature([keyword.encode()]))
        return got


def reference_user_examples(user_id: int, sf_lines, ad_lines, profile, ads: dict, config):
    """One user's Examples feature by feature (a dict of Features per row, parsed with the
    sources' parsers): the definition the columnar build is tested against.

    Args:
      sf_lines / ad_lines: the user's impression lines (any order).
      profile: ``(age_bucket, gender, city_tier, activity_level)`` strings.
      ads: {ad_id: (category, title_tokens)}.

    Returns:
      records: ``(dataset, day, impression_id, payload, clicked)``, SF rows then ad rows, each
        in (day, ts, impression_id) order.
      counts_by_day: {day: {vocab: {token: n}}} of every feature the records carry.
    """
    sf_rows = sorted((parse_sf_impression(text)[1] for text in sf_lines), key=lambda r: r[:3])
    ad_rows = sorted((parse_ad_impression(text)[1] for text in ad_lines), key=lambda r: r[:3])
    max_history, max_query, max_title = config.max_sf_history, config.max_query_tokens, config.max_title_tokens
    max_ad_history = config.max_ad_history_tokens
    user = str(user_id)
    user_features = {"user_id": wire.bytes_feature([user.encode()])}
    for name, value in zip(PROFILE_FIELDS, profile):
        user_features[name] = wire.bytes_feature([value.encode()])
    clicks = [(row[0], row[4]) for row in sf_rows if row[5] == 1]  # (day, keyword), by ts
    ad_clicks = [(row[0], ads[row[4]][1]) for row in ad_rows if row[6] == 1]  # (day, title)
    history_cache: dict[int, tuple[bytes, bytes]] = {}

    def history(day: int) -> tuple[bytes, bytes]:
        features = history_cache.get(day)
        if features is None:
            earlier = [kw for d, kw in clicks if d < day][::-1][:max_history]
            tokens = []
            for d, title in reversed(ad_clicks):
                if len(tokens) >= max_ad_history:
                    break
                if d < day:
                    tokens.extend(title[:max_title])
            features = history_cache[day] = (
                wire.bytes_feature([kw.encode() for kw in earlier]),
                wire.bytes_feature([t.encode() for t in tokens[:max_ad_history]]))
        return features

    counts_by_day: dict = {}

    def common(day, impression_id, query, clicked):
        counts = counts_by_day.setdefault(day, {})
        _bump(counts, "user_id", [user])
        for name, value in zip(PROFILE_FIELDS, profile):
            _bump(counts, name, [value])
        query = query[:max_query]
        category = query_category(query)
        _bump(counts, "token", query)
        if category:
            _bump(counts, "category", [category])
        features = dict(user_features)
        features["history_sf_keywords"], features["history_ad_title_tokens"] = history(day)
        features["query_tokens"] = wire.bytes_feature([t.encode() for t in query])
        features["query_category"] = wire.bytes_feature([category.encode()])
        features["clicked"] = wire.int64_feature([clicked])
        features["impression_id"] = wire.int64_feature([impression_id])
        features["day"] = wire.int64_feature([day])
        return features, counts

    records = []
    for day, _, impression_id, query, keyword, clicked in sf_rows:
        features, counts = common(day, impression_id, query, clicked)
        features["sf_keyword"] = wire.bytes_feature([keyword.encode()])
        _bump(counts, "token", [keyword])
        records.append(("sf", day, impression_id, wire.example(features), clicked))

    for day, _, impression_id, query, ad_id, position, clicked in ad_rows:
        category, title = ads[ad_id]
        title = title[:max_title]
        features, counts = common(day, impression_id, query, clicked)
        features["ad_id"] = wire.bytes_feature([str(ad_id).encode()])
        features["category"] = wire.bytes_feature([category.encode()])
        features["title_tokens"] = wire.bytes_feature([t.encode() for t in title])
        features["position"] = wire.bytes_feature([str(position).encode()])
        _bump(counts, "ad_id", [str(ad_id)])
        _bump(counts, "category", [category])
        _bump(counts, "token", title)
        _bump(counts, "position", [str(position)])
        records.append(("ad_click", day, impression_id, wire.example(features), clicked))
    return records, counts_by_day
