"""The output folder of a build: one whole build in it, never a mix of two.

A local ``OUT`` is built in a sibling staging folder (``.OUT.build-<random>``, hidden so nothing
mistakes it for output) and swapped into place once the job has finished and its checks passed:
``renameat2(RENAME_EXCHANGE)`` where the kernel has it (one atomic step), else two renames. A
folder that already holds files is refused unless ``overwrite``, so a typo in ``--out`` cannot
replace a directory of other data. A failed build leaves ``OUT`` untouched.

A remote ``OUT`` (gs://) has no atomic rename: a non-empty one is refused unless ``overwrite``,
and because spec.json lists the exact files of its build, readers never pick up a file an
earlier build left there.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import uuid

from adpush_core.errors import UserError

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _is_remote(path: str) -> bool:
    return "://" in path


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


class Target:
    """Where the job writes (``path``) and how the result reaches ``out``."""

    def __init__(self, out: str, path: str, staged: bool):
        self.out, self.path, self._staged = out, path, staged

    def read_json(self, name: str) -> dict:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(FileSystems.join(self.path, name)) as fh:
            return json.loads(fh.read())

    def kept_message(self, out: str) -> str:
        if self._staged:
            return f"This build's output (dead letters, stats.json) is in {self.path}; {out} is unchanged."
        return f"This build's output (dead letters, stats.json) is in {out}."

    def abandon(self) -> None:
        if self._staged:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        """Put the staged build at ``out`` (atomically replacing what was there)."""
        if not self._staged:
            return
        out = self.out
        if not os.path.exists(out):
            os.rename(self.path, out)
            return
        if _exchange(self.path, out):
            shutil.rmtree(self.path)  # now the old build
            return
        old = f"{self.path}.old"
        os.rename(out, old)
        os.rename(self.path, out)
        shutil.rmtree(old)


def prepare(out: str, overwrite: bool = False, dry_run: bool = False) -> Target:
    """Check ``out`` and return the Target the job writes to."""
    if _is_remote(out):
        if not dry_run and not overwrite:
            from apache_beam.io.filesystems import FileSystems

            found = FileSystems.match([FileSystems.join(out, "**")], limits=[1])[0].metadata_list
            if found:
                raise UserError(f"--out {out} is not empty ({found[0].path}); pass --overwrite to write "
                                "a new build there (its spec.json lists exactly its own files)")
        return Target(out, out, staged=False)
    out = os.path.abspath(out)
    if os.path.isfile(out):
        raise UserError(f"--out {out} is a file, not a folder")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise UserError(f"--out {out} is not empty; pass --overwrite to replace it (the new build is "
                        "written beside it and swapped in only when it succeeded)")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(out)}.build-{uuid.uuid4().hex[:12]}")
    os.makedirs(staging)
    return Target(out, staging, staged=True)
