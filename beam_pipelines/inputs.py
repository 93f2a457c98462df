"""build-data's inputs, checked before the pipeline starts: ``--source`` and ``--input`` → the
files of each role (a world's simulate-logs directory, Taobao's behaviour files, Ali-CCP's raw or
AITM files)."""
from __future__ import annotations

import glob
import os
import posixpath

from adpush_core.errors import UserError
from beam_pipelines.config import SOURCES

WORLD_FILES = ("users.csv", "ads.csv", "sf_impressions.csv", "ad_impressions.csv", "behaviour.csv")


def is_remote(path: str) -> bool:
    return "://" in path


def resolve_inputs(source: str, inputs) -> dict:
    """Check the inputs before the pipeline starts; returns {role: [file patterns]}.

    Raises UserError for an unknown source or a missing local path (remote paths are checked by
    the runner, never at construction time).
    """
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise UserError("no --input given")
    for path in inputs:
        if not is_remote(path) and not glob.glob(path):
            raise UserError(f"input path {path!r} does not exist")

    def expand(path, names=None):
        if not is_remote(path) and os.path.isdir(path):
            files = sorted(f for f in glob.glob(os.path.join(path, "*"))
                           if os.path.isfile(f) and not f.endswith((".md", ".json")))
            return files if names is None else [f for f in files if os.path.basename(f) in names]
        return [path]

    if source == "world":
        if len(inputs) != 1:
            raise UserError("--source world takes one --input: the simulate-logs directory")
        root = inputs[0]
        join = posixpath.join if is_remote(root) else os.path.join
        if not is_remote(root):
            missing = [n for n in WORLD_FILES if not os.path.isfile(join(root, n))]
            if missing:
                raise UserError(f"{root!r} is not a simulate-logs directory: missing {', '.join(missing)}")
        files = {n.removesuffix(".csv"): [join(root, n)] for n in WORLD_FILES}
        files["manifest"] = join(root, "manifest.json")
        return files
    files = [f for path in inputs for f in expand(path)]
    if source == "taobao":
        return {"behaviour": files}
    skeleton = [f for f in files if "sample_skeleton" in os.path.basename(f)]
    common = [f for f in files if "common_features" in os.path.basename(f)]
    if skeleton or common:
        if not skeleton or not common:
            raise UserError("raw Ali-CCP needs both sample_skeleton_* and common_features_* files")
        return {"skeleton": skeleton, "common_features": common}
    return {"aitm": [f for f in files if f.endswith((".csv", ".csv.gz"))] or files}
