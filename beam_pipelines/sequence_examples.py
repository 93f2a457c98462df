"""Per-user construction of the sequence dataset (one SequenceExample per ``pv`` impression).

Task definition of 000 on Taobao UserBehavior: an impression is a ``pv`` of an item; ``click``
= the user carts, favourites or buys that item at or after the impression and before their
next ``pv`` of the same item (a "buy now" without a cart is a click-through too);
``conversion`` = a buy of the item in the same interval (so conversion implies click: entire
space, 000/003). Each action is credited to the latest view
of its item (last touch), so a cart after the third view of an item labels the third view,
not all three — which is also exactly the step whose probability the world's oracle gives.
History = the user's events strictly before the impression's ``ts``, the last
``max_history``, most recent last. With a catalogue (the world source: ``ads.csv``), the
candidate item's title tokens go into the context as ``title_tokens`` (at most
``max_title_tokens``, in title order); the Taobao rows have no titles and no such feature.

All of a user's impressions are built in two passes: events are sorted once, the labels come
from one backward pass (per item: a cart/fav or buy seen since its next view), a history is a
slice found by bisection, and each history step is encoded once per user (wire.py).
"""
from __future__ import annotations

import bisect

import numpy as np

from adpush_core.tfenv import import_tensorflow
from beam_pipelines import wire
from beam_pipelines.sources.behaviour import BEHAVIOURS, BUY, PV

_BEHAVIOUR_FEATURES = [wire.bytes_feature([b.encode()]) for b in BEHAVIOURS]
_BEHAVIOUR_STEPS = [wire.feature_list_step(f) for f in _BEHAVIOUR_FEATURES]
_CLICK_ENTRIES = [wire.map_entry("click", wire.int64_feature([v])) for v in range(2)]
_CONVERSION_ENTRIES = [wire.map_entry("conversion", wire.int64_feature([v])) for v in range(2)]


def build_user_sequences(user_id: int, events, day_origin: int, max_history: int,
                         profile: dict[str, str] | None = None, day_seconds: int = 86400,
                         titles: dict | None = None, max_title_tokens: int = 16):
    """Build every impression of one user.

    Args:
      events: iterable of ``(ts, item_id, category, behaviour_code)``.
      profile: {profile field: value} added to the context (world source), or None.
      day_seconds: length of a "day" (split period; BuildConfig.split_seconds).
      titles: {item_id: title tokens} (world source: the catalogue), or None for no
        ``title_tokens`` feature; an item missing from it gets an empty title.

    Returns:
      (records, token_counts): records are ``(day, ts, index, click, conversion, payload)``
      with ``payload`` a serialized SequenceExample; token_counts is
      ``{day: {vocab: {token: count}}}`` over all of the user's events (``title_token``
      counts every event's title tokens, as ``item_id`` counts its item).
    """
    events = sorted(events)
    ts_arr = np.fromiter((e[0] for e in events), dtype=np.int64, count=len(events))
    ts_list = ts_arr.tolist()
    # Backward pass: a view's labels are the actions on its item before the item's next view.
    labels: dict[int, tuple[int, int]] = {}
    clicked_since: dict[int, bool] = {}
    bought_since: dict[int, bool] = {}
    for index in range(len(events) - 1, -1, -1):
        _, item, _, code = events[index]
        if code == PV:
            labels[index] = (int(clicked_since.get(item, False)), int(bought_since.get(item, False)))
            clicked_since[item] = bought_since[item] = False
        else:  # cart, fav or buy: a buy without a cart ("buy now") is also a click-through
            clicked_since[item] = True
            bought_since[item] = bought_since.get(item, False) or code == BUY
    item_features: dict[int, bytes] = {}
    category_features: dict[int, bytes] = {}
    title_of: dict[int, tuple[str, ...]] = {}
    item_steps, category_steps, behaviour_steps = [], [], []
    user_token = str(user_id)
    token_counts: dict = {}
    for ts, item, category, code in events:
        feature = item_features.get(item)
        if feature is None:
            feature = item_features[item] = wire.bytes_feature([str(item).encode()])
        item_steps.append(wire.feature_list_step(feature))
        feature = category_features.get(category)
        if feature is None:
            feature = category_features[category] = wire.bytes_feature([str(category).encode()])
        category_steps.append(wire.feature_list_step(feature))
        behaviour_steps.append(_BEHAVIOUR_STEPS[code])
        day = (ts - day_origin) // day_seconds
        counts = token_counts.get(day)
        if counts is None:
            counts = token_counts[day] = {"user_id": {}, "item_id": {}, "category": {}, "behavior": {}}
            if profile:
                for name in profile:
                    counts[name] = {}
            if titles is not None:
                counts["title_token"] = {}
        for vocab, token in (("user_id", user_token), ("item_id", str(item)),
                             ("category", str(category)), ("behavior", BEHAVIOURS[code])):
            bucket = counts[vocab]
            bucket[token] = bucket.get(token, 0) + 1
        if titles is not None:
            title = title_of.get(item)
            if title is None:
                title = title_of[item] = tuple(titles.get(item, ()))[:max_title_tokens]
            bucket = counts["title_token"]
            for token in title:
                bucket[token] = bucket.get(token, 0) + 1
        if profile:
            for name, value in profile.items():
                counts[name][value] = counts[name].get(value, 0) + 1

    # Context map entries in key order; those fixed for the user (or the item) are encoded once.
    fixed = {"user_id": wire.map_entry("user_id", wire.bytes_feature([user_token.encode()]))}
    if profile:
        for name, value in profile.items():
            fixed[name] = wire.map_entry(name, wire.bytes_feature([value.encode()]))
    order = sorted(list(fixed) + ["item_id", "category", "click", "conversion", "ts", "day"]
                   + (["title_tokens"] if titles is not None else []))
    item_entries = {item: wire.map_entry("item_id", f) for item, f in item_features.items()}
    title_entries = {item: wire.map_entry("title_tokens", wire.bytes_feature([t.encode() for t in title]))
                     for item, title in title_of.items()}
    category_entries = {c: wire.map_entry("category", f) for c, f in category_features.items()}
    day_entries: dict[int, bytes] = {}
    records = []
    for index, (ts, item, category, code) in enumerate(events):
        if code != PV:
            continue
        end = bisect.bisect_left(ts_list, ts)
        start = max(0, end - max_history)
        click, conversion = labels[index]
        day = (ts - day_origin) // day_seconds
        day_entry = day_entries.get(day)
        if day_entry is None:
            day_entry = day_entries[day] = wire.map_entry("day", wire.int64_feature([day]))
        entries = dict(fixed)
        entries["item_id"] = item_entries[item]
        entries["category"] = category_entries[category]
        if titles is not None:
            entries["title_tokens"] = title_entries[item]
        entries["click"] = _CLICK_ENTRIES[click]
        entries["conversion"] = _CONVERSION_ENTRIES[conversion]
        entries["ts"] = wire.map_entry("ts", wire.int64_feature([ts]))
        entries["day"] = day_entry
        context = b"".join([entries[k] for k in order])
        gaps = np.log1p((ts - ts_arr[start:end]).astype(np.float64)).astype(np.float32)
        feature_lists = b"".join([  # keys in sorted order
            wire.map_entry("hist_behavior", b"".join(behaviour_steps[start:end])),
            wire.map_entry("hist_category", b"".join(category_steps[start:end])),
            wire.map_entry("hist_item_id", b"".join(item_steps[start:end])),
            wire.map_entry("hist_time_gap", wire.float_feature_list(gaps)),
        ])
        records.append((day, ts, index, click, conversion, wire.wrap_sequence_example(context, feature_lists)))
    return records, token_counts


def reference_sequence_example(context: dict, history: list[tuple], impression_ts: int):
    """The same SequenceExample through the protobuf API (``.add()``/``.append``); for tests.

    Args:
      context: {name: bytes | int | list[bytes]} context features (a list: ``title_tokens``).
      history: ``[(ts, item_id, category, behaviour_code)]`` oldest first.
    """
    import math

    tf = import_tensorflow()

    ex = tf.train.SequenceExample()
    for name, value in context.items():
        feature = ex.context.feature[name]
        if isinstance(value, list):
            feature.bytes_list.SetInParent()  # an empty title is still a bytes_list
            feature.bytes_list.value.extend(value)
        elif isinstance(value, bytes):
            feature.bytes_list.value.append(value)
        else:
            feature.int64_list.value.append(value)
    lists = ex.feature_lists.feature_list
    item, category, behaviour, gap = (lists["hist_item_id"], lists["hist_category"],
                                      lists["hist_behavior"], lists["hist_time_gap"])
    for ts, item_id, category_id, code in history:
        item.feature.add().bytes_list.value.append(str(item_id).encode())
        category.feature.add().bytes_list.value.append(str(category_id).encode())
        behaviour.feature.add().bytes_list.value.append(BEHAVIOURS[code].encode())
        gap.feature.add().float_list.value.append(math.log1p(impression_ts - ts))
    return ex
