"""Two worker processes on loopback ports train one selling-point model with
``adpush train sf --distribution multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG),
under Algorithm 1 (alternating MTDL: SourceAdam's masked updates inside the collective step).

Checked: both workers exit 0 and end on the same weights (each prints a sha256 of them); only
the chief writes its run directory; the chief's history.json equals a one-process run's within
1e-5 relative: every worker reads the same global batches and each takes its half of each, so
the steps are the one process's with the gradient summed in two parts.
"""
from __future__ import annotations

import json

import pytest

from cluster import two_workers_and_one_process

ARGS = ["--model", "mtdl", "--strategy", "alternating", "--epochs", "2", "--batch-size", "64",
        "--learning-rate", "0.01", "--embedding-dim", "4", "--attention-units", "4",
        "--weight-average", "0.9", "--patience", "10", "--quiet"]


@pytest.mark.slow
def test_two_workers_train_one_selling_point_model_like_one_process(sp_data, tmp_path):
    runs = [tmp_path / f"run{i}" for i in range(2)]
    _, digests = two_workers_and_one_process(["sf", "--data", str(sp_data[0]), *ARGS], tmp_path)
    assert digests[0] == digests[1]  # one model: the same weights

    chief = runs[0]
    for name in ("config.json", "history.json", "model/weights.index", "checkpoints"):
        assert (chief / name).exists(), name
    assert not runs[1].exists()  # the other worker wrote nothing there
    two = json.loads((chief / "history.json").read_text())
    one = json.loads((tmp_path / "single" / "history.json").read_text())
    assert [r["steps"] for r in two] == [r["steps"] for r in one]
    for a, b in zip(two, one):
        for key in ("train_loss_sf", "train_loss_ad_click", "valid_auc", "valid_logloss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
