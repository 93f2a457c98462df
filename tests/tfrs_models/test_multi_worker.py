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
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent / "cascade"))

ARGS = ["--model", "esmm", "--encoder", "mean", "--dropout", "0", "--epochs", "3",
        "--batch-size", "25", "--learning-rate", "3e-3", "--patience", "1", "--quiet"]
DIGEST = re.compile(r"trained weights sha256 ([0-9a-f]{64})")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(data: Path, run: Path, distribution: str, tmp: Path, tf_config: dict | None = None):
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "adpush.cli", "train", "cascade", "--data", str(data),
         "--run-dir", str(run), "--distribution", distribution, *ARGS],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_workers_train_one_model_like_one_process(tmp_path):
    from cascade_fixture_data import write_sequence_dataset

    data = write_sequence_dataset(tmp_path / "data", rows=192, seed=0)
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    runs = [tmp_path / f"run{i}" for i in range(2)]
    procs = [_train(data, runs[i], "multi_worker", tmp_path / f"tmp{i}",
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
             for i in range(2)]
    single = _train(data, tmp_path / "single", "none", tmp_path / "tmp_single")
    outputs = []
    for proc in [*procs, single]:
        out, _ = proc.communicate(timeout=600)
        outputs.append(out)
        assert proc.returncode == 0, out[-3000:]

    digests = [DIGEST.search(out) for out in outputs[:2]]
    assert all(digests), outputs[0][-2000:]
    assert digests[0].group(1) == digests[1].group(1)   # one model: the same weights

    chief = runs[0]
    for name in ("config.json", "metrics.json", "saved_model", "checkpoints/state.json",
                 "tensorboard/train", "tensorboard/validation"):
        assert (chief / name).exists(), name
    assert not runs[1].exists()                          # the other worker wrote nothing there
    assert list((tmp_path / "tmp1").iterdir()) == []     # and deleted its temporary directory

    two = json.loads((chief / "metrics.json").read_text())
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert len(two["history"]["val_objective"]) == len(one["history"]["val_objective"])
    for key in ("val_objective", "objective", "val_click_auc", "loss"):
        assert two["history"][key] == pytest.approx(one["history"][key], abs=1e-6), key
    for task in ("click", "conversion"):
        for metric in ("auc", "logloss"):
            assert two["test"][task][metric] == pytest.approx(one["test"][task][metric], abs=1e-6)
