"""SplitByDay (and SplitByHash for sources without days): assign every element a split."""
from __future__ import annotations

import functools
import hashlib
import math

import apache_beam as beam

from beam_pipelines.config import SPLITS, BuildConfig


def day_splits(num_days: int, config: BuildConfig) -> list[str]:
    """Split name of each day ``0 .. num_days-1``; earlier days train, then valid, then test.

    "Last N days are test" (002) if ``config.test_days`` is set, else whole days in proportion
    to ``config.split_fractions`` by the largest-remainder method (ties -> later split), with at
    least one day for every non-zero fraction when there are enough days.
    E.g. 9 days at 50/10/40 -> 4 train, 1 valid, 4 test.
    """
    if config.test_days is not None:
        test = min(config.test_days, num_days)
        valid = min(config.valid_days, num_days - test)
        counts = [num_days - test - valid, valid, test]
    else:
        quotas = [f * num_days for f in config.split_fractions]
        counts = [math.floor(q) for q in quotas]
        order = sorted(range(3), key=lambda i: (-(quotas[i] - counts[i]), -i))
        for i in order[: num_days - sum(counts)]:
            counts[i] += 1
        for i in range(3):  # a non-zero fraction gets a day, taken from the largest split
            if config.split_fractions[i] > 0 and counts[i] == 0:
                donor = max(range(3), key=lambda j: (counts[j], j))
                if counts[donor] > 1:
                    counts[donor] -= 1
                    counts[i] += 1
    names: list[str] = []
    for name, count in zip(SPLITS, counts):
        names.extend([name] * count)
    return names


def make_window(day_origin: int, start: int, end: int,
                split_seconds: int = 86400) -> tuple[int, int, int, int]:
    """``(day_origin, start_ts, end_ts, num_days)``: valid rows have ``start <= ts < end``;
    ``day = (ts - day_origin) // 86400``. Taobao: the origin is the window start (China
    midnight); world (contracts §1): ``day = (ts - window_start) // 86400``, so the origin is the
    start too. A window whose origin is the UTC midnight before a non-aligned start touches one
    more day (the world's windows did, before issue 13: 6/1/3 days of a 10-day world).
    ``split_seconds`` < 86400 makes the "days" shorter periods (a sample that covers hours)."""
    return (day_origin, start, end, (end - 1 - day_origin) // split_seconds + 1)


@functools.lru_cache(maxsize=64)
def _cached_day_splits(num_days: int, config: BuildConfig) -> list[str]:
    return day_splits(num_days, config)


def _assign(element, window, config):
    day, value = element
    splits = _cached_day_splits(window[3], config)
    return splits[min(max(day, 0), len(splits) - 1)], value


class SplitByDay(beam.PTransform):
    """``(day, value)`` -> ``(split, value)``; ``window`` is a singleton side input from
    ``make_window`` (days outside the window never reach here: they are dead letters)."""

    def __init__(self, window, config: BuildConfig):
        super().__init__()
        self._window = window
        self._config = config

    def expand(self, pcoll):
        return pcoll | beam.Map(_assign, self._window, self._config)


def hash_split(key: str, config: BuildConfig) -> str:
    """Split of a row without a day: sha256(seed:key) picks a bucket in [0, 1)."""
    digest = hashlib.sha256(f"{config.seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    train, valid, _ = config.split_fractions
    return "train" if u < train else "valid" if u < train + valid else "test"


class SplitByHash(beam.PTransform):
    """``(key, value)`` -> ``(split, value)`` with ``hash_split``; deterministic for a seed."""

    def __init__(self, config: BuildConfig):
        super().__init__()
        self._config = config

    def expand(self, pcoll):
        config = self._config
        return pcoll | beam.MapTuple(lambda key, value: (hash_split(str(key), config), value))
