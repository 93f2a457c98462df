"""SavedModel export exactly as TensorFlow Serving loads it: ``BASE/NAME/<version>/``.

* ``publish_saved_model`` publishes a SavedModel directory as a version atomically: copied into a
  hidden temporary directory in the same parent (TF Serving ignores non-numeric children),
  fsynced, then renamed into place with ``RENAME_NOREPLACE`` where the kernel has it. An existing
  version is never overwritten and a failed export leaves nothing behind (tensorflow/serving#631,
  #1086 are what happens otherwise). The model is never loaded or saved again here.
* ``write_warmup_requests`` writes ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of
  ``PredictionLog``), replayed by the server before a version is switched on.
* ``verify_saved_model`` checks an export in a subprocess that never imports adpush
  (``saved_model_cli scan`` for py-func ops, ``saved_model_cli run`` for the numbers).
* ``export_run`` is what ``adpush export`` calls: it reads ``RUN/export_info.json``
  (contract in ``serving/README.md``) and publishes the SavedModel the training run wrote.

TensorFlow is imported lazily: importing this module is cheap.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from adpush_core.tfenv import import_tensorflow

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
PY_FUNC_OPS = ("EagerPyFunc", "PyFunc", "PyFuncStateless")
MAX_WARMUP_RECORDS = 1000
_VERSION_RE = re.compile(r"^\d+$")


class ExportError(RuntimeError):
    """An export could not be written (or would overwrite a finished version)."""


# --------------------------------------------------------------------------------------------
# Versions and the atomic writer


def existing_versions(model_dir: str | os.PathLike) -> list[int]:
    """Numeric children of ``model_dir`` (TF Serving's rule: ``SimpleAtoi`` succeeds), sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION_RE.match(p.name))


def next_version(model_dir: str | os.PathLike) -> int:
    """One more than the highest existing version, or 1."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails if ``dst`` exists (renameat2 RENAME_NOREPLACE; check+rename fallback).

    A plain rename of a directory onto an *empty* existing directory succeeds on Linux, so the
    check matters even for directories.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        res = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if res == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "version already exists", str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "version already exists", str(dst))
    os.rename(src, dst)


def publish_saved_model(
    saved_model_dir: str | os.PathLike,
    base_path: str | os.PathLike,
    model_name: str,
    version: int | None = None,
    warmup_requests: Sequence[Any] | None = None,
    before_publish: Callable[[Path], None] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Publish the SavedModel at ``saved_model_dir`` as ``base_path/model_name/<version>/``, atomically.

    The directory is copied as it is (``saved_model.pb``, ``variables/`` and ``assets/`` stay
    byte-identical), then the warm-up file and ``extra_files`` are added.

    Args:
      saved_model_dir: a SavedModel directory (``saved_model.pb`` + ``variables/``).
      base_path: the model base directory; ``model_name`` is created under it.
      version: integer version; default: highest existing + 1 (1 for a new model).
      warmup_requests: ``PredictRequest`` / ``ClassificationRequest`` / ``RegressionRequest``
        protos (or ``(signature_name, {alias: array})`` pairs) written to
        ``assets.extra/tf_serving_warmup_requests``.
      before_publish: called with the temporary directory once it is complete (e.g. an op
        scan); raising aborts the export and nothing is published.
      extra_files: ``{relative path: bytes}`` written into the version before it is published
        (e.g. ``assets.extra/validation_metrics.json``, which the export gate compares with).

    Returns:
      The path of the finished version directory.

    Raises:
      ExportError: there is no SavedModel at ``saved_model_dir``, the version exists already (it
        is never overwritten) or copying failed; in every case nothing is left in
        ``base_path/model_name``.
    """
    src = Path(saved_model_dir).resolve()
    if not (src / "saved_model.pb").is_file():
        raise ExportError(f"{src} has no saved_model.pb: not a SavedModel directory")
    model_dir = Path(base_path) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(model_dir)
    version = int(version)
    if version < 0:
        raise ExportError(f"version must be a non-negative integer, got {version}")
    final = model_dir / str(version)
    if version in existing_versions(model_dir):
        raise ExportError(f"version {version} of model {model_name!r} already exists in {model_dir}; "
                          "versions are never overwritten")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_dir))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if warmup_requests:
            write_warmup_requests(tmp, warmup_requests, model_name=model_name)
        for relative, data in (extra_files or {}).items():
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if before_publish is not None:
            before_publish(tmp)
        _fsync_tree(tmp)
        try:
            _rename_noreplace(tmp, final)
        except FileExistsError as err:
            raise ExportError(f"version {version} of model {model_name!r} appeared while exporting; "
                              "not overwritten") from err
        _fsync_dir(model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------------------------
# Warm-up


def predict_request(model_name: str, signature_name: str, inputs: Mapping[str, Any]):
    """A ``PredictRequest`` whose inputs are the given arrays (typed TensorProtos)."""
    from tensorflow_serving.apis import predict_pb2

    from serving.tensors import ndarray_to_tensor_proto

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model_name
    req.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        req.inputs[key].CopyFrom(ndarray_to_tensor_proto(np.asarray(value)))
    return req


def write_warmup_requests(export_dir: str | os.PathLike, requests: Sequence[Any], model_name: str = "") -> Path:
    """Write ``export_dir/assets.extra/tf_serving_warmup_requests`` (TFRecord of PredictionLog)."""
    tf = import_tensorflow()
    from tensorflow_serving.apis import (classification_pb2, prediction_log_pb2, predict_pb2,
                                         regression_pb2)

    if len(requests) > MAX_WARMUP_RECORDS:
        raise ExportError(f"{len(requests)} warm-up requests; TF Serving accepts at most {MAX_WARMUP_RECORDS}")
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for req in requests:
            if isinstance(req, tuple):
                req = predict_request(model_name, req[0], req[1])
            if isinstance(req, predict_pb2.PredictRequest):
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            elif isinstance(req, classification_pb2.ClassificationRequest):
                log = prediction_log_pb2.PredictionLog(
                    classify_log=prediction_log_pb2.ClassifyLog(request=req))
            elif isinstance(req, regression_pb2.RegressionRequest):
                log = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=req))
            else:
                raise ExportError(f"unsupported warm-up request type {type(req).__name__}")
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir: str | os.PathLike) -> list[Any]:
    """The ``PredictionLog`` records of a version's warm-up file ([] when there is none)."""
    tf = import_tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / WARMUP_FILE
    if not path.exists():
        return []
    logs = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
        if i >= MAX_WARMUP_RECORDS:
            raise ExportError(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


# --------------------------------------------------------------------------------------------
# Verification in a process that has never imported adpush


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


# --------------------------------------------------------------------------------------------
# Run directory → export (what ``adpush export`` calls)

EXPORT_INFO = "export_info.json"


def read_export_info(run_dir: str | os.PathLike) -> dict:
    """``RUN/export_info.json``, which the training code writes (contract in serving/README.md)."""
    info_path = Path(run_dir) / EXPORT_INFO
    if not info_path.is_file():
        raise ExportError(f"{info_path} not found: `adpush train` writes it with the run's SavedModel "
                          f"(see serving/README.md); re-train runs written before it did")
    try:
        info = json.loads(info_path.read_text())
    except ValueError as err:
        raise ExportError(f"{info_path}: not JSON ({err})") from err
    if not isinstance(info, dict) or "saved_model" not in info:
        raise ExportError(f"{info_path} has no 'saved_model' field")
    return info


def export_run(run_dir: str | os.PathLike, base_path: str | os.PathLike, model_name: str,
               version: int | None = None, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Publish the SavedModel a training run left in ``run_dir`` (``RUN/export_info.json``, README).

    ``export_info.json`` fields read here:
      * ``saved_model`` (path, relative to ``run_dir``): a SavedModel written by the training code
        whose signatures already follow the serving contract (``serving_default`` over raw
        features, ``regress``/``classify`` over tf.Example, ``select_selling_points``).
      * ``warmup_inputs`` (optional): ``{signature: {input: nested list}}`` — a few real requests,
        typed from the SignatureDefs in ``saved_model.pb``.

    The SavedModel is copied, not re-saved, through ``publish_saved_model`` (atomic, versioned,
    warm-up); a model with py-func ops is refused before anything is written
    (``verify_saved_model`` runs the same check through ``saved_model_cli`` in a subprocess).
    """
    tf = import_tensorflow()

    run_dir = Path(run_dir)
    info = read_export_info(run_dir)
    src = (run_dir / info["saved_model"]).resolve()
    if not (src / "saved_model.pb").is_file():
        raise ExportError(f"{src} has no saved_model.pb ({run_dir / EXPORT_INFO} names it): did "
                          "training finish?")
    signatures = signature_defs(src)
    if "serving_default" not in signatures:
        raise ExportError(f"{src} has no serving_default signature")
    found = denylisted_ops(src)
    if found:
        raise ExportError(f"{src} contains ops TF Serving cannot run: {sorted(found)}")
    warmup = []
    for sig_name, inputs in (info.get("warmup_inputs") or {}).items():
        if sig_name not in signatures:
            raise ExportError(f"{run_dir / EXPORT_INFO}: warmup_inputs names {sig_name!r}, which {src} "
                              f"does not have (its signatures: {', '.join(sorted(signatures))})")
        typed = {}
        for key, tensor in signatures[sig_name].inputs.items():
            if key in inputs:
                dtype = tf.dtypes.as_dtype(tensor.dtype)
                typed[key] = np.asarray(inputs[key], dtype=object if dtype == tf.string
                                        else dtype.as_numpy_dtype)
        warmup.append((sig_name, typed))
    return publish_saved_model(src, base_path, model_name, version=version,
                               warmup_requests=warmup or None, extra_files=extra_files)
