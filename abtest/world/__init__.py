"""The simulated marketplace world: catalogue, users, queries and true click models.

It feeds the Beam sources (raw logs), gives every model an oracle ceiling (true probabilities)
and is the A/B simulator's environment. Everything is vectorised numpy and deterministic for a
seed.
"""
from abtest.world.config import WorldConfig
from abtest.world.world import World

__all__ = ["World", "WorldConfig"]
