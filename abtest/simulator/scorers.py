"""Scorers for the personalised policy, chosen by a URL-like spec.

``oracle`` uses the world's true appeal (the ceiling any model could reach).
"""
from __future__ import annotations

from adpush.errors import UserError
from abtest.simulator.policies import OracleScorer


def make_scorer(spec: str, world):
    if spec == "oracle":
        return OracleScorer(world)
    raise UserError(f"unknown scorer {spec!r}: use oracle, rest://HOST:PORT/MODEL, "
                    f"grpc://HOST:PORT/MODEL or saved_model:PATH")
