"""build-data's local default: one worker process per core for large local inputs."""
from __future__ import annotations

import pytest

from beam_pipelines import runner_options

MP = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(runner_options.os, "sched_getaffinity", lambda pid: {0, 1})


@pytest.fixture
def files(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x" * 600)
    b.write_bytes(b"y" * 500)
    return [str(a), str(b)]


def test_large_local_input_runs_one_worker_per_core(two_cores, files, monkeypatch):
    monkeypatch.setattr(runner_options, "LOCAL_PARALLEL_BYTES", 1100)      # the two files: 1,100 bytes
    assert runner_options.local_parallelism([], files) == MP
    assert runner_options.local_parallelism(["--runner=FnApiRunner"], files) == ["--runner=FnApiRunner"] + MP
    assert runner_options.local_parallelism(["--runner=DirectRunner"], files) == ["--runner=DirectRunner"] + MP


def test_small_input_stays_in_memory(two_cores, files, monkeypatch):
    monkeypatch.setattr(runner_options, "LOCAL_PARALLEL_BYTES", 1101)
    assert runner_options.local_parallelism([], files) == []


def test_workers_are_capped(files, monkeypatch):
    monkeypatch.setattr(runner_options, "LOCAL_PARALLEL_BYTES", 1)
    monkeypatch.setattr(runner_options.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert runner_options.local_parallelism([], files)[-1] == f"--direct_num_workers={runner_options.LOCAL_MAX_WORKERS}"
    monkeypatch.setattr(runner_options.os, "sched_getaffinity", lambda pid: {3})
    assert runner_options.local_parallelism([], files) == []          # one core: nothing to parallelise


@pytest.mark.parametrize("given", [
    ["--direct_running_mode=in_memory"],
    ["--direct_num_workers=3"],
    ["--runner=DataflowRunner", "--project=p"],
    ["--runner", "FnApiRunner"],
])
def test_an_explicit_choice_is_kept(two_cores, files, monkeypatch, given):
    monkeypatch.setattr(runner_options, "LOCAL_PARALLEL_BYTES", 1)
    assert runner_options.local_parallelism(given, files) == given


def test_remote_inputs_are_left_to_the_runner(two_cores, monkeypatch):
    monkeypatch.setattr(runner_options, "LOCAL_PARALLEL_BYTES", 1)
    assert runner_options.local_parallelism([], ["gs://bucket/logs/a.csv"]) == []
