"""Versions as TensorFlow Serving loads them: ``BASE/NAME/<version>/``, published atomically.

``publish_saved_model`` copies a SavedModel directory into a hidden temporary directory in the
same parent (TF Serving ignores non-numeric children), fsynced, then renamed into place with
``RENAME_NOREPLACE`` where the kernel has it. An existing version is never overwritten and a
failed export leaves nothing behind (tensorflow/serving#631, #1086 are what happens otherwise).
The model is never loaded or saved again here.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from serving.errors import ExportError
from serving.warmup import write_warmup_requests

_VERSION_RE = re.compile(r"^\d+$")


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
