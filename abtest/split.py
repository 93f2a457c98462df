"""The buckets of an experiment: which is the control, the configured traffic split (``--split``)
the SRM test compares with, and whether every bucket can be tested at all."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from abtest.stats.inference import degenerate_reason
from abtest.stats.sufficient import SufficientStats
from adpush_core.errors import UserError


def check_buckets(where: str, stats: Mapping[str, SufficientStats], control: str) -> None:
    """Every bucket must be testable (``abtest.stats.inference.degenerate_reason``)."""
    for name, s in stats.items():
        reason = degenerate_reason(s, control=name == control)
        if reason:
            raise UserError(f"{where}: {'control ' if name == control else ''}bucket {name!r} {reason}")


def parse_split(text: str | None, buckets: Sequence[str]) -> dict[str, float]:
    """``--split``: ``control=50,treatment=50`` or positional ``50,50`` (bucket order of the file)."""
    if not text:
        return {name: 1.0 for name in buckets}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    weights: dict[str, float] = {}
    try:
        if all("=" in p for p in parts):
            for p in parts:
                name, value = p.split("=", 1)
                weights[name.strip()] = float(value)
        elif any("=" in p for p in parts):
            raise UserError(f"--split {text!r}: use either name=weight pairs or plain weights, not both")
        else:
            if len(parts) != len(buckets):
                raise UserError(f"--split {text!r} has {len(parts)} weights for {len(buckets)} buckets {list(buckets)}")
            weights = {name: float(p) for name, p in zip(buckets, parts)}
    except ValueError as err:
        raise UserError(f"--split {text!r}: weights must be numbers") from err
    unknown = set(weights) - set(buckets)
    if unknown:
        raise UserError(f"--split names unknown bucket(s) {sorted(unknown)}; buckets are {list(buckets)}")
    missing = set(buckets) - set(weights)
    if missing:
        raise UserError(f"--split gives no weight for bucket(s) {sorted(missing)}")
    if any(not (w > 0 and math.isfinite(w)) for w in weights.values()):
        raise UserError(f"--split {text!r}: weights must be positive")
    return weights


def choose_control(buckets: Sequence[str], control: str | None, where: str = "input") -> str:
    if control is not None:
        if control not in buckets:
            raise UserError(f"{where}: control bucket {control!r} is not in the input; buckets are {list(buckets)}")
        return control
    if len(buckets) < 2:
        raise UserError(f"{where}: need a control and at least one treatment bucket, the input has {list(buckets)}")
    return "control" if "control" in buckets else buckets[0]
