"""Taobao UserBehavior rows (also the world's behaviour.csv): ``user,item,category,behavior,ts``."""
from __future__ import annotations

from beam_pipelines.dead_letter import BadRow
from beam_pipelines.sources.fields import parse_id

BEHAVIOURS = ("pv", "cart", "fav", "buy")
BEHAVIOUR_CODE = {name: code for code, name in enumerate(BEHAVIOURS)}
PV, CART, FAV, BUY = range(4)
WORLD_HEADER = b"user_id,item_id,category,behavior,ts"


def parse_behaviour(text: str, window: tuple[int, int]):
    """Returns ``(user_id, (ts, item_id, category, behaviour_code))``.

    Args:
      window: ``(day_origin, start_ts, end_ts, num_days)`` (split_by_day.make_window); rows
        with ``ts`` outside ``[start_ts, end_ts)`` raise ``timestamp_outside_window``.
    """
    fields = text.split(",")
    if len(fields) != 5:
        raise BadRow("wrong_column_count")
    user, item, category = parse_id(fields[0]), parse_id(fields[1]), parse_id(fields[2])
    ts = parse_id(fields[4])
    code = BEHAVIOUR_CODE.get(fields[3])
    if code is None:
        raise BadRow("unknown_behavior")
    if not window[1] <= ts < window[2]:
        raise BadRow("timestamp_outside_window")
    return user, (ts, item, category, code)


def is_label_event(row) -> bool:
    """A cart/fav/buy event: used for labels and history, never written as an example (only a
    ``pv`` is an impression)."""
    return row[3] != PV
