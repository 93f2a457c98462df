"""Two worker processes on loopback ports train one cascade model with
``adpush train cascade --distribution multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG).

Checked: both workers exit 0; they end on the same weights (each prints a sha256 of its
weights); only the chief writes its run directory (the other worker gets a run directory of its
own, which must stay absent, and its temporary directory is emptied); the chief's figures equal
a one-process run's (``--distribution none``) on the same data within 1e-6 (measured: 6e-8 on
the objectives, the AUCs equal), float summation noise:
every worker reads the same global batches and each takes its half of each, so the steps are the
one process's, with the gradient summed in two parts (no dropout, so no per-replica randomness).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cluster import two_workers_and_one_process

sys.path.insert(0, str(Path(__file__).resolve().parent / "cascade"))

ARGS = ["--model", "esmm", "--encoder", "mean", "--dropout", "0", "--epochs", "3",
        "--batch-size", "25", "--learning-rate", "3e-3", "--patience", "1", "--quiet"]


@pytest.mark.slow
def test_two_workers_train_one_model_like_one_process(tmp_path):
    from cascade_fixture_data import write_sequence_dataset

    data = write_sequence_dataset(tmp_path / "data", rows=192, seed=0)
    runs = [tmp_path / f"run{i}" for i in range(2)]
    _, digests = two_workers_and_one_process(["cascade", "--data", str(data), *ARGS], tmp_path)
    assert digests[0] == digests[1]   # one model: the same weights

    chief = runs[0]
    for name in ("config.json", "metrics.json", "export/saved_model", "export_info.json",
                 "checkpoints/state.json", "tensorboard/train", "tensorboard/validation"):
        assert (chief / name).exists(), name
    assert not runs[1].exists()                          # the other worker wrote nothing there
    assert list((tmp_path / "tmp1").iterdir()) == []     # and deleted its temporary directory

    def read(run, name):
        return json.loads((run / name).read_text())

    two, one = read(chief, "history.json"), read(tmp_path / "single", "history.json")
    assert len(two) == len(one)
    for key in ("val_objective", "objective", "val_click_auc", "loss"):
        assert [r[key] for r in two] == pytest.approx([r[key] for r in one], abs=1e-6), key
    two = read(chief, "metrics.json")["test"]["model"]
    one = read(tmp_path / "single", "metrics.json")["test"]["model"]
    for task in ("click", "conversion"):
        for metric in ("auc", "logloss"):
            assert two[task][metric] == pytest.approx(one[task][metric], abs=1e-6)
