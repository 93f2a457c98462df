"""Typed options of the build-data job (docs/contracts.md §2, DESIGN "Data the pipelines build")."""
from __future__ import annotations

import dataclasses

SOURCES = ("world", "taobao", "aliccp")
SPLITS = ("train", "valid", "test")

# Taobao UserBehavior: 2017-11-25 00:00 to 2017-12-04 00:00 China time (+08:00), 9 days.
TAOBAO_WINDOW_START = 1511539200
TAOBAO_WINDOW_DAYS = 9


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What build-data does beyond reading its input.

    Attributes:
      min_count: a token enters a vocabulary if it occurs at least this often in the train
        split (000 drops features seen fewer than ten times).
      split_fractions: (train, valid, test) fractions of the days (000: 50/10/40); whole days
        are assigned with the largest-remainder method, each non-zero fraction gets >= 1 day.
      test_days: if set, the last ``test_days`` days are test and the ``valid_days`` before
        them valid (002: "the 9th day is the test set"); overrides ``split_fractions``.
      num_shards: files per (dataset, split); records go to ``crc32(key) % num_shards``.
      max_history: cap of the behaviour sequence (most recent kept).
      max_sf_history: cap of ``history_sf_keywords``.
      max_ad_history_tokens: cap of ``history_ad_title_tokens`` (about 6 clicked ads' titles).
      window_start / window_days: the Taobao observation window (Unix seconds, days);
        rows outside are dead-lettered. The world's window is read from its own logs.
      window_seconds: the Taobao window in seconds (overrides window_days), for samples that
        cover hours (the 110k-row time-sorted extract spans 2 h 10 min of one day).
      split_seconds: length of one split period for Taobao (default a day); the split
        fractions assign whole periods, so a 2-hour sample can still be split 50/10/40.
      seed: salt of the hash split of Ali-CCP rows (it has no days).
    """

    min_count: int = 10
    split_fractions: tuple[float, float, float] = (0.5, 0.1, 0.4)
    test_days: int | None = None
    valid_days: int = 1
    num_shards: int = 4
    max_history: int = 50
    max_sf_history: int = 20
    max_ad_history_tokens: int = 48
    max_query_tokens: int = 4
    max_title_tokens: int = 16
    window_start: int = TAOBAO_WINDOW_START
    window_days: int = TAOBAO_WINDOW_DAYS
    window_seconds: int | None = None
    split_seconds: int = 86400
    seed: int = 0
    line_batch_size: int = 20000

    def __post_init__(self):
        from adpush_core.errors import UserError

        if self.min_count < 1:
            raise UserError(f"min_count must be >= 1, got {self.min_count}")
        if len(self.split_fractions) != 3 or any(f < 0 for f in self.split_fractions):
            raise UserError(f"split_fractions must be 3 non-negative numbers, got {self.split_fractions}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise UserError(f"split_fractions must sum to 1, got {self.split_fractions}")
        if self.test_days is not None and (self.test_days < 1 or self.valid_days < 0):
            raise UserError("test_days must be >= 1 and valid_days >= 0")
        if self.num_shards < 1:
            raise UserError(f"num_shards must be >= 1, got {self.num_shards}")
        if self.window_days < 1:
            raise UserError(f"window_days must be >= 1, got {self.window_days}")
        if self.window_seconds is not None and self.window_seconds < 1:
            raise UserError(f"window_seconds must be >= 1, got {self.window_seconds}")
        if not 1 <= self.split_seconds <= 86400:
            raise UserError(f"split_seconds must be in [1, 86400], got {self.split_seconds}")
