"""A fingerprint of the batches an input pipeline yields: pins the exact rows, order, padding and
dtypes, so a change to the data layer that would move a trained figure fails a test."""
from __future__ import annotations

import hashlib

import numpy as np


def batches_digest(dataset) -> str:
    """sha256 over every batch: per feature (sorted by name) its name, dtype, shape and values."""
    h = hashlib.sha256()
    for batch in dataset:
        for name in sorted(batch):
            value = batch[name].numpy()
            h.update(f"{name}|{value.dtype}|{value.shape}|".encode())
            if value.dtype == object:
                for item in value.reshape(-1):
                    h.update(len(item).to_bytes(4, "little") + item)
            else:
                h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()
