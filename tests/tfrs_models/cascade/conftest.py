"""Fixtures of the cascade tests: one tiny SequenceExample dataset per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/harness.py


@pytest.fixture(scope="session")
def cascade_data(tmp_path_factory):
    """Data dir (spec.json + vocab + GZIP SequenceExample TFRecords), seed 0."""
    from cascade_fixture_data import write_sequence_dataset

    return write_sequence_dataset(tmp_path_factory.mktemp("cascade") / "out", rows=192, seed=0)


@pytest.fixture(scope="session")
def cascade_spec(cascade_data):
    from tfrs_models.cascade.data import load_dataset

    return load_dataset(cascade_data)


@pytest.fixture(scope="session")
def cascade_layout(cascade_spec):
    import dataclasses

    from tfrs_models.cascade.features import InputLayout

    return dataclasses.asdict(InputLayout.from_spec(cascade_spec))


@pytest.fixture(scope="session")
def cascade_batch(cascade_spec):
    from tfrs_models.input import dataset_batches

    return next(iter(dataset_batches(cascade_spec, "train", 32, order="sequential_records")))
