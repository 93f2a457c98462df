"""Stable bucket assignment: a salted 64-bit hash of the user id, mapped onto the split.

The same (user id, salt, split) always gives the same bucket, across runs, days and machines,
as a production assignment service does; different salts give independent assignments, so
concurrent experiments do not share their treated users.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _salt_key(salt: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "little"))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a fast, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_unit(user_ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per user id, fixed by the salt."""
    x = np.asarray(user_ids).astype(np.uint64) ^ _salt_key(salt)
    return (_splitmix64(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_buckets(user_ids: np.ndarray, salt: str, split: Sequence[float]) -> np.ndarray:
    """Bucket index per user: 0 .. len(split)-1, in proportion to ``split``."""
    weights = np.asarray(split, dtype=np.float64)
    if weights.ndim != 1 or weights.size < 2 or np.any(weights <= 0):
        raise ValueError(f"split must list at least two positive weights, got {list(split)}")
    edges = np.cumsum(weights / weights.sum())[:-1]
    return np.searchsorted(edges, hash_unit(user_ids, salt), side="right")
