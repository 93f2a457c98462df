"""What a SavedModel holds and whether TF Serving can run it, read without loading it here.

* ``signature_defs`` / ``denylisted_ops`` parse ``saved_model.pb`` (protobuf): the SignatureDefs,
  and the py-func ops TF Serving cannot run.
* ``verify_saved_model`` checks an export in a subprocess that never imports adpush
  (``saved_model_cli scan`` for py-func ops, ``saved_model_cli run`` for the numbers).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from serving.errors import ExportError

PY_FUNC_OPS = ("EagerPyFunc", "PyFunc", "PyFuncStateless")


@dataclass
class Verification:
    denylisted_ops: set[str]
    outputs: dict[str, np.ndarray]


def _saved_model_cli() -> list[str]:
    exe = Path(sys.executable).with_name("saved_model_cli")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def scan_ops(export_dir: str | os.PathLike, denylist: Iterable[str] = PY_FUNC_OPS, timeout: float = 300) -> set[str]:
    """Denylisted ops found by ``saved_model_cli scan`` (run in a subprocess, cwd outside the repo)."""
    cmd = _saved_model_cli() + ["scan", "--dir", str(export_dir), "--tag_set", "serve",
                                "--op_denylist", ",".join(denylist)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env(),
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise ExportError(f"saved_model_cli scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
    found: set[str] = set()
    m = re.search(r"contains the following denylisted ops: \{([^}]*)\}", proc.stdout)
    if m:
        found = {s.strip().strip("'\"") for s in m.group(1).split(",") if s.strip()}
    elif "does not contain" not in proc.stdout:
        raise ExportError(f"unexpected saved_model_cli scan output: {proc.stdout[-2000:]}")
    return found


def _read_saved_model(export_dir: str | os.PathLike):
    """The ``SavedModel`` protobuf of ``export_dir/saved_model.pb`` (no graph is loaded)."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return sm


def signature_defs(export_dir: str | os.PathLike, tag: str = "serve") -> dict[str, Any]:
    """``{signature key: SignatureDef}`` of the MetaGraph tagged ``tag``, read from the protobuf."""
    for meta in _read_saved_model(export_dir).meta_graphs:
        if tag in meta.meta_info_def.tags:
            return dict(meta.signature_def)
    raise ExportError(f"{export_dir} has no MetaGraph tagged {tag!r}")


def denylisted_ops(export_dir: str | os.PathLike, denylist: Iterable[str] = PY_FUNC_OPS) -> set[str]:
    """In-process equivalent of ``scan``: denylisted ops in the graph and its function library."""
    ops: set[str] = set()
    for meta in _read_saved_model(export_dir).meta_graphs:
        ops.update(n.op for n in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
    return ops & set(denylist)


def run_signature(export_dir: str | os.PathLike, signature_name: str, inputs: Mapping[str, np.ndarray],
                  timeout: float = 300) -> dict[str, np.ndarray]:
    """Outputs of ``saved_model_cli run`` for ``inputs`` (``.npy`` files, read back from ``--outdir``)."""
    with tempfile.TemporaryDirectory(prefix="adpush-smcli-") as work:
        in_args = []
        for key, value in inputs.items():
            arr = np.asarray(value)
            if arr.dtype.kind in "OUS":
                arr = np.array([v.encode() if isinstance(v, str) else v for v in arr.ravel()],
                               dtype=object).reshape(arr.shape).astype(bytes)
            path = os.path.join(work, f"in_{len(in_args)}.npy")
            np.save(path, arr)
            in_args.append(f"{key}={path}")
        outdir = os.path.join(work, "out")
        cmd = _saved_model_cli() + ["run", "--dir", str(export_dir), "--tag_set", "serve",
                                    "--signature_def", signature_name, "--inputs", ";".join(in_args),
                                    "--outdir", outdir, "--overwrite"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env(), cwd=work)
        if proc.returncode != 0:
            raise ExportError(f"saved_model_cli run failed ({proc.returncode}): {proc.stderr[-3000:]}")
        return {p.stem: np.load(os.path.join(outdir, p.name), allow_pickle=True)
                for p in Path(outdir).iterdir() if p.suffix == ".npy"}


def verify_saved_model(export_dir: str | os.PathLike, signature_name: str | None = None,
                       inputs: Mapping[str, np.ndarray] | None = None) -> Verification:
    """``scan`` for py-func ops (raises if any) and, given inputs, ``run`` one signature."""
    found = scan_ops(export_dir)
    if found:
        raise ExportError(f"{export_dir} contains ops TF Serving cannot run: {sorted(found)}")
    outputs = run_signature(export_dir, signature_name, inputs) if signature_name and inputs is not None else {}
    return Verification(found, outputs)
