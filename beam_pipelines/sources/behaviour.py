"""Taobao UserBehavior rows (also the world's behaviour.csv): ``user,item,category,behavior,ts``."""
from __future__ import annotations

from beam_pipelines.dead_letter import BadRow

BEHAVIOURS = ("pv", "cart", "fav", "buy")
BEHAVIOUR_CODE = {name: code for code, name in enumerate(BEHAVIOURS)}
PV, CART, FAV, BUY = range(4)
WORLD_HEADER = b"user_id,item_id,category,behavior,ts"


def parse_id(field: str) -> int:
    """A non-negative decimal id; anything else is a ``non_integer_field``."""
    if not field.isascii() or not field.isdigit():
        raise BadRow("non_integer_field")
    return int(field)


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
