"""Shared pytest fixtures. Keras 2 is selected before any test imports TensorFlow."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real public data samples next to the repository (../shared/data), or where
    ``ADPUSH_SHARED_DATA`` points (a git worktree that is not next to shared/)."""
    candidates = [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / ".." / "shared" / "data"]
    if os.environ.get("ADPUSH_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["ADPUSH_SHARED_DATA"]))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    pytest.skip("../shared/data is not next to this checkout")


@pytest.fixture(scope="session")
def tiny_world_config():
    """A world small enough for unit tests (seconds), with every segment still populated."""
    from abtest.world.config import WorldConfig

    return WorldConfig.tiny()


@pytest.fixture(scope="session")
def tiny_world_logs(tmp_path_factory, tiny_world_config) -> Path:
    """Raw logs of the tiny world (seed 7), written once per test session."""
    from abtest.world.logs import simulate_logs

    out = tmp_path_factory.mktemp("world_logs")
    simulate_logs(out, tiny_world_config, seed=7, progress=False)
    return out
