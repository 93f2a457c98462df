"""A shard's impression lines as columns, and its ``sf`` / ``ad_click`` records in file order.

The checked lines are parsed into numpy columns (``pyarrow.csv``: about 50 bytes a row instead
of a ~110-byte Python str, and no Python step per field), put in file order once (one
``np.lexsort``), and each record is built and handed to its writer right away: a shard holds
its columns and the entries of the (user, day) pairs it is building, never its examples (the
per-user build held and sorted them: ~380 MB a run, spilled to temporary files and read back).

The bytes are those of the per-user build (``build_sf_examples.reference_user_examples``)
followed by a stable sort by impression id (tests/beam_pipelines/test_impression_columns.py): a
file's order is (impression id, user id, day, ts, arrival), arrival being the line's position in
the shard's input, the tie-break that build gave.
"""
from __future__ import annotations

import numpy as np

from beam_pipelines import wire
from beam_pipelines.build_sf_examples import (_AD_KEYS, _AD_VARIABLE, _CLICKED, _SF_KEYS, _SF_VARIABLE, EntryCache,
                                              _impression_entry, _segments, query_category)
from beam_pipelines.features import PROFILE_FIELDS

SF_COLUMNS = ("impression_id", "user_id", "query", "sf_keyword", "day", "ts", "clicked")
AD_COLUMNS = ("impression_id", "user_id", "query", "ad_id", "position", "day", "ts", "clicked")
_TEXT = {"query", "sf_keyword"}
HISTORY_CACHE_ENTRIES = 16384  # (user, day) entries kept; when full, only the current day's stay
_SLICE = 1 << 16               # rows turned into Python values at a time


def _narrow(values: np.ndarray) -> np.ndarray:
    """``values`` (non-negative integers) in the smallest integer dtype that holds them: a day,
    a label or a position is a byte or two, not eight."""
    if not len(values):
        return values.astype(np.int8)
    top = int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64, copy=False)


class ImpressionColumns:
    """Rows of one kind (SF or ad impressions) of one shard: ``columns[name]`` int64 arrays in
    arrival order (text columns as codes into ``texts[name]``, the distinct values)."""

    def __init__(self, names):
        self.names = tuple(names)
        self.columns: dict = {}
        self.texts = {name: [] for name in self.names if name in _TEXT}
        self._codes = {name: {} for name in self.texts}
        self._parts: list = []

    def __len__(self) -> int:
        return len(self.columns.get("impression_id", ()))

    def add_text(self, data: bytes) -> None:
        """Append newline-separated checked lines (``world.check_*_impression``: right column
        count, ASCII-digit ids within int64, labels 0/1)."""
        if not data:
            return
        part = None
        if b"\r" not in data:   # pyarrow.csv ends a row at "\r" too: such text takes the Python path
            try:
                part = self._arrow_part(data)
            except Exception:  # noqa: BLE001 - anything pyarrow refuses is parsed line by line
                part = None
        if part is None:
            part = self._python_part(data)
        self._parts.append(part)

    def _code_column(self, name, values) -> np.ndarray:
        index, texts = self._codes[name], self.texts[name]
        remap = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values):
            code = index.get(value)
            if code is None:
                code = index[value] = len(texts)
                texts.append(value)
            remap[i] = code
        return remap

    def _arrow_part(self, data: bytes) -> dict:
        import pyarrow as pa
        from pyarrow import csv

        types = {n: pa.dictionary(pa.int32(), pa.string()) if n in _TEXT else pa.int64() for n in self.names}
        table = csv.read_csv(
            pa.py_buffer(data),
            read_options=csv.ReadOptions(column_names=list(self.names), use_threads=False, block_size=1 << 26),
            parse_options=csv.ParseOptions(delimiter=",", quote_char=False, escape_char=False,
                                           newlines_in_values=False, ignore_empty_lines=False),
            convert_options=csv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                               quoted_strings_can_be_null=False))
        part = {}
        for name in self.names:
            column = table.column(name)
            if name in _TEXT:
                pieces = []
                for chunk in column.chunks:
                    remap = self._code_column(name, chunk.dictionary.to_pylist())
                    pieces.append(remap[chunk.indices.to_numpy(zero_copy_only=False)])
                part[name] = _narrow(np.concatenate(pieces)) if pieces else np.empty(0, np.int8)
            else:
                part[name] = _narrow(column.to_numpy())
        return part

    def _python_part(self, data: bytes) -> dict:
        lines = data.decode("utf-8").split("\n")
        rows = [line.split(",") for line in lines]
        part = {}
        for i, name in enumerate(self.names):
            values = [row[i] for row in rows]
            if name in _TEXT:
                distinct = list(dict.fromkeys(values))
                remap = dict(zip(distinct, self._code_column(name, distinct).tolist()))
                part[name] = _narrow(np.array([remap[v] for v in values], dtype=np.int64))
            else:
                part[name] = _narrow(np.array([int(v) for v in values], dtype=np.int64))
        return part

    def finish(self) -> "ImpressionColumns":
        """Concatenate the parts added so far into ``columns``, a column at a time (each part's
        column is freed once copied, so the shard is held about once)."""
        parts, self._parts = self._parts, []
        if self.columns:
            parts.insert(0, self.columns)
        columns = {}
        for name in self.names:
            pieces = [part.pop(name) for part in parts]
            columns[name] = np.concatenate(pieces) if pieces else np.empty(0, np.int8)
            del pieces
        self.columns = columns
        return self

    def file_order(self) -> np.ndarray:
        """Row indices in file order: (impression id, user id, day, ts, arrival); lexsort is
        stable, so rows with equal keys keep their arrival order."""
        c = self.columns
        return np.lexsort((c["ts"], c["day"], c["user_id"], c["impression_id"]))

    def click_order(self) -> np.ndarray:
        """Indices of the clicked rows by (user id, day, ts, impression id, arrival): each user's
        clicks in the order its history is read from."""
        c = self.columns
        clicked = np.flatnonzero(c["clicked"] == 1)
        order = np.lexsort((c["impression_id"][clicked], c["ts"][clicked], c["day"][clicked], c["user_id"][clicked]))
        return clicked[order]


def _user_clicks(columns: ImpressionColumns, value_of) -> dict:
    """{user_id: [(day, value)]} of the clicked rows, each user's in history order."""
    order = columns.click_order()
    c = columns.columns
    users, days = c["user_id"][order].tolist(), c["day"][order].tolist()
    values = value_of(order)
    clicks: dict = {}
    for user, day, value in zip(users, days, values):
        got = clicks.get(user)
        if got is None:
            got = clicks[user] = []
        got.append((day, value))
    return clicks


class _History:
    """The serialized entries around an SF / ad row's variable ones, per (user, day)
    (a user's ``history`` in ``reference_user_examples``): user, profile, the SF keywords and ad title
    tokens the user clicked on earlier days, the day."""

    def __init__(self, sf: ImpressionColumns, ad: ImpressionColumns, profiles, ads, config, cache: EntryCache):
        self.profiles, self.config, self.cache = profiles, config, cache
        keywords = [k.strip() for k in sf.texts.get("sf_keyword", [])]
        sf_codes = sf.columns["sf_keyword"] if len(sf) else np.empty(0, np.int64)
        self.sf_clicks = _user_clicks(sf, lambda order: [keywords[k] for k in sf_codes[order].tolist()])
        ad_ids = ad.columns["ad_id"] if len(ad) else np.empty(0, np.int64)
        self.ad_clicks = _user_clicks(ad, lambda order: [ads[a][1] for a in ad_ids[order].tolist()])
        self.users: dict = {}
        self.days: dict = {}

    def user_entries(self, user_id: int) -> dict:
        fixed = self.users.get(user_id)
        if fixed is None:
            fixed = {"user_id": wire.map_entry("user_id", wire.bytes_feature([str(user_id).encode()]))}
            for name, value in zip(PROFILE_FIELDS, self.profiles[user_id]):
                fixed[name] = wire.map_entry(name, wire.bytes_feature([value.encode()]))
            self.users[user_id] = fixed
        return fixed

    def segments(self, user_id: int, day: int):
        """``(sf segments, ad segments)`` of ``build_sf_examples._segments``."""
        key = (user_id, day)
        got = self.days.get(key)
        if got is not None:
            return got
        if len(self.days) >= HISTORY_CACHE_ENTRIES:
            # Rows come in impression-id (time) order: the earlier days' entries are done with.
            kept = {k: v for k, v in self.days.items() if k[1] == day}
            self.days = kept if len(kept) < HISTORY_CACHE_ENTRIES // 2 else {}
        config = self.config
        clicks = self.sf_clicks.get(user_id, ())
        earlier = [kw for d, kw in clicks if d < day][::-1][:config.max_sf_history]
        tokens: list = []
        for d, title in reversed(self.ad_clicks.get(user_id, ())):
            if len(tokens) >= config.max_ad_history_tokens:
                break
            if d < day:
                tokens.extend(title[:config.max_title_tokens])
        entries = dict(self.user_entries(user_id))
        entries["history_sf_keywords"] = wire.map_entry(
            "history_sf_keywords", wire.bytes_feature([kw.encode() for kw in earlier]))
        entries["history_ad_title_tokens"] = wire.map_entry(
            "history_ad_title_tokens", wire.bytes_feature([t.encode() for t in tokens[:config.max_ad_history_tokens]]))
        entries["day"] = self.cache.day_entry(day)
        got = self.days[key] = (_segments(_SF_KEYS, _SF_VARIABLE, entries), _segments(_AD_KEYS, _AD_VARIABLE, entries))
        return got


def _rows(columns: dict, order: np.ndarray, names):
    """Tuples of ``columns[name]`` for ``names``, rows in ``order``, _SLICE rows of Python values
    at a time (a whole shard's as Python ints would be ~50 bytes a value)."""
    for start in range(0, len(order), _SLICE):
        rows = order[start:start + _SLICE]
        yield from zip(*[columns[name][rows].tolist() for name in names])


def shard_records(sf: ImpressionColumns, ad: ImpressionColumns, profiles, ads, config):
    """The shard's records in file order: ``(dataset, day, impression_id, payload, clicked)``,
    every SF row (impression id order) then every ad row.

    Args:
      sf / ad: the shard's finished columns (``SF_COLUMNS`` / ``AD_COLUMNS``), rows checked.
      profiles: {user_id: (age_bucket, gender, city_tier, activity_level)}.
      ads: {ad_id: (category, title_tokens)}.
    """
    cache = EntryCache(ads, config)
    history = _History(sf, ad, profiles, ads, config, cache)
    segments = history.segments
    if len(sf):
        c = sf.columns
        order = sf.file_order()
        queries = [cache.query_entries(q)[2:] for q in sf.texts["query"]]
        keywords = [cache.keyword_entry(k.strip()) for k in sf.texts["sf_keyword"]]
        impression_entry = _impression_entry
        for imp, user, day, query, keyword, clicked in _rows(
                c, order, ("impression_id", "user_id", "day", "query", "sf_keyword", "clicked")):
            s = segments(user, day)[0]
            query_entry, category_entry = queries[query]
            payload = b"".join((s[0], _CLICKED[clicked], s[1], impression_entry(imp), s[2], category_entry,
                                s[3], query_entry, s[4], keywords[keyword], s[5]))
            yield "sf", day, imp, wire.wrap_example(payload), clicked
    if len(ad):
        c = ad.columns
        order = ad.file_order()
        queries = [cache.query_entries(q)[2:] for q in ad.texts["query"]]
        ad_entries = cache.ad_entries
        position_entry = cache.position_entry
        for imp, user, day, query, ad_id, position, clicked in _rows(
                c, order, ("impression_id", "user_id", "day", "query", "ad_id", "position", "clicked")):
            s = segments(user, day)[1]
            query_entry, category_entry = queries[query]
            _, _, ad_entry, ad_category_entry, title_entry = ad_entries(ad_id)
            payload = b"".join((s[0], ad_entry, s[1], ad_category_entry, s[2], _CLICKED[clicked], s[3],
                                _impression_entry(imp), s[4], position_entry(position), s[5],
                                category_entry, s[6], query_entry, s[7], title_entry, s[8]))
            yield "ad_click", day, imp, wire.wrap_example(payload), clicked


def _count(bucket: dict, token: str, n: int) -> None:
    bucket[token] = bucket.get(token, 0) + n


def shard_token_counts(sf: ImpressionColumns, ad: ImpressionColumns, profiles, ads, config, keep_day) -> dict:
    """{vocab: {token: n}} over the rows whose day ``keep_day`` accepts (the train split):
    the counts ``reference_user_examples`` gives, summed over the kept days and the users."""
    counts: dict = {"user_id": {}, **{name: {} for name in PROFILE_FIELDS}, "token": {}, "category": {},
                    "ad_id": {}, "position": {}}
    tokens, categories = counts["token"], counts["category"]
    rows_per_user: dict = {}

    def kept(columns: ImpressionColumns) -> np.ndarray:
        days = columns.columns["day"]
        distinct = np.unique(days)
        keep = np.array([bool(keep_day(int(d))) for d in distinct.tolist()], dtype=bool)
        return keep[np.searchsorted(distinct, days)]

    def per_code(codes: np.ndarray) -> list[tuple[int, int]]:
        values, n = np.unique(codes, return_counts=True)
        return list(zip(values.tolist(), n.tolist()))

    def per_user(users: np.ndarray) -> None:
        for user, n in per_code(users):
            rows_per_user[user] = rows_per_user.get(user, 0) + n

    def queries(columns: ImpressionColumns, mask: np.ndarray) -> None:
        texts = columns.texts["query"]
        for code, n in per_code(columns.columns["query"][mask]):
            query = tuple(texts[code].split())[:config.max_query_tokens]
            for t in query:
                _count(tokens, t, n)
            category = query_category(query)
            if category:
                _count(categories, category, n)

    if len(sf):
        mask = kept(sf)
        per_user(sf.columns["user_id"][mask])
        queries(sf, mask)
        keywords = sf.texts["sf_keyword"]
        for code, n in per_code(sf.columns["sf_keyword"][mask]):
            _count(tokens, keywords[code].strip(), n)
    if len(ad):
        mask = kept(ad)
        per_user(ad.columns["user_id"][mask])
        queries(ad, mask)
        for ad_id, n in per_code(ad.columns["ad_id"][mask]):
            category, title = ads[ad_id]
            for t in title[:config.max_title_tokens]:
                _count(tokens, t, n)
            _count(categories, category, n)
            _count(counts["ad_id"], str(ad_id), n)
        for position, n in per_code(ad.columns["position"][mask]):
            _count(counts["position"], str(position), n)
    for user, n in rows_per_user.items():
        _count(counts["user_id"], str(user), n)
        for name, value in zip(PROFILE_FIELDS, profiles[user]):
            _count(counts[name], value, n)
    return {vocab: bucket for vocab, bucket in counts.items() if bucket}
