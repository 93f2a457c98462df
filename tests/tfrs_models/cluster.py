"""Runs ``adpush train <family> --distribution multi_worker`` as two worker processes on
loopback ports (TF_CONFIG), beside one ``--distribution none`` process, for the 2-worker tests."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIGEST = re.compile(r"trained weights sha256 ([0-9a-f]{64})")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(command: list, run: Path, distribution: str, tmp: Path, tf_config: dict | None = None):
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "adpush.cli", "train", *command, "--run-dir", str(run),
         "--distribution", distribution], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def two_workers_and_one_process(command: list, tmp_path: Path):
    """Train ``adpush train *command`` as workers 0 and 1 (into ``tmp_path/run0``, ``run1``)
    and as one process (``tmp_path/single``); every process must exit 0.

    Returns:
        ``(outputs, digests)``: the three processes' output (workers first), and the two
        workers' weight digests.
    """
    workers = [f"localhost:{port}" for port in free_ports(2)]
    procs = [_train(command, tmp_path / f"run{i}", "multi_worker", tmp_path / f"tmp{i}",
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
             for i in range(2)]
    procs.append(_train(command, tmp_path / "single", "none", tmp_path / "tmp_single"))
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        outputs.append(out)
        assert proc.returncode == 0, out[-3000:]
    digests = [DIGEST.search(out) for out in outputs[:2]]
    assert all(digests), outputs[0][-2000:]
    return outputs, [d.group(1) for d in digests]
