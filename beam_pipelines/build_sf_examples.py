"""The world's SF and ad-click impressions of one user -> ``sf`` / ``ad_click`` Examples.

``build_user_examples`` is called by WriteImpressionShards once per user, with the text lines
of the user's impressions (already checked by ``world.check_sf_impression`` /
``check_ad_impression``: known user, known ad), which it parses again.

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
    zeros dropped ("" if none); serving/families.py derives it the same way in the graph."""
    for token in tokens:
        digits = token[4:]
        if token.startswith("cat_") and digits.isascii() and digits.isdigit():
            return str(int(digits))
    return ""


def _bump(counts: dict, vocab: str, tokens):
    bucket = counts.setdefault(vocab, {})
    for token in tokens:
        bucket[token] = bucket.get(token, 0) + 1


def build_user_examples(user_id: int, sf_lines, ad_lines, profile, ads: dict, config):
    """One user's impressions -> ``(records, counts_by_day)``.

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
