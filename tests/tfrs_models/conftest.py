"""Fixtures of the tfrs_models tests: one tiny synthetic SF + ad-click dataset per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def sp_data(tmp_path_factory):
    """``(data_dir, logs_dir)`` of the synthetic selling-point dataset (seed 0)."""
    from selling_point_fixtures import write_dataset

    root = tmp_path_factory.mktemp("sp_data")
    write_dataset(root / "out", seed=0, logs_dir=root / "logs")
    return root / "out", root / "logs"


@pytest.fixture(scope="session")
def sp_spec(sp_data):
    from tfrs_models.input import load_spec

    return load_spec(sp_data[0])
