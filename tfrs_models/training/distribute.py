"""Where training runs: one process (``none``), every local device (``mirrored``) or a cluster of
worker processes (``multi_worker``, ``tf.distribute.MultiWorkerMirroredStrategy``).

A multi-worker cluster is described by the ``TF_CONFIG`` environment variable, the same in every
worker but for ``task.index``::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}'

Every worker runs the same program and makes the same calls (MWMS runs each collective op
once per worker): each computes the validation metrics, the early-stopping decision and calls
save. Only the chief (``task.type`` "chief", or worker 0 when the cluster has no chief) writes
the run directory; the other workers write into a temporary directory deleted afterwards
(``write_dir``).

Input: ``global_batches`` shards by data: every worker reads the same global batches and keeps
its replicas' slice of each (``fit`` splits each batch over the replicas in sync), so a step is
exactly one process's step. Both families train this way; sharding each source by worker before
batching (``distribute_datasets_from_function``) would read less per worker but change the
batches, and with them every figure.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adpush_core.errors import UserError

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
TF_CONFIG = "TF_CONFIG"


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a ``TF_CONFIG`` cluster."""

    chief: tuple[str, ...]       # the chief's address, or () when worker 0 is the chief
    workers: tuple[str, ...]
    task_type: str               # "chief" or "worker"
    task_index: int

    @property
    def is_chief(self) -> bool:
        if self.chief:
            return self.task_type == "chief"
        return self.task_index == 0


def parse_tf_config(text: str | None) -> ClusterTask:
    """Check a ``TF_CONFIG`` value and return this worker's task.

    Raises UserError naming TF_CONFIG when it is missing, not JSON, lists no workers, or names a
    task that is not in the cluster.
    """
    if not text:
        raise UserError(f"--distribution multi_worker needs the {TF_CONFIG} environment variable "
                        '(e.g. {"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, '
                        '"task": {"type": "worker", "index": 0}})')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{TF_CONFIG} is not JSON: {err}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f'{TF_CONFIG} needs a "cluster" object and a "task" object, got {text!r}')
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise UserError(f"{TF_CONFIG} cluster has jobs {sorted(unknown)}; multi_worker training "
                        "takes only \"chief\" (at most one) and \"worker\"")
    jobs = {name: cluster.get(name, []) for name in ("chief", "worker")}
    for name, addresses in jobs.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and a for a in addresses):
            raise UserError(f'{TF_CONFIG} cluster "{name}" must be a list of "host:port" strings, '
                            f"got {addresses!r}")
    if len(jobs["chief"]) > 1:
        raise UserError(f'{TF_CONFIG} cluster has {len(jobs["chief"])} chiefs; at most one')
    if not jobs["chief"] + jobs["worker"]:
        raise UserError(f"{TF_CONFIG} cluster lists no workers")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[task_type]):
        raise UserError(f"{TF_CONFIG} task {task!r} is not in the cluster "
                        f"({ {k: len(v) for k, v in jobs.items() if v} })")
    return ClusterTask(chief=tuple(jobs["chief"]), workers=tuple(jobs["worker"]),
                       task_type=task_type, task_index=index)


def make_strategy(name: str):
    """The ``tf.distribute.Strategy`` of ``--distribution``; call it before any other TensorFlow
    op (MWMS must configure the runtime's collectives before the runtime starts).

    ``none``: the default strategy (one replica, no wrapping); ``mirrored``: one replica per
    local GPU, or the CPU; ``multi_worker``: one replica per worker process of ``TF_CONFIG``.
    """
    if name not in DISTRIBUTIONS:
        raise UserError(f"--distribution must be one of {', '.join(DISTRIBUTIONS)}, got {name!r}")
    if name == "multi_worker":
        parse_tf_config(os.environ.get(TF_CONFIG))   # a clear error before TensorFlow's own
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this worker writes the run directory (always true outside multi_worker)."""
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def write_dir(path: Path, chief: bool):
    """The directory this worker writes ``path``'s files into: ``path`` itself on the chief, a
    temporary directory on the other workers, deleted when the block ends (under MWMS every
    worker must call save, whose reads of the variables are collective ops)."""
    if chief:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"adpush-{path.name}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def global_batches(dataset):
    """``dataset`` (of global batches) set to be split by data, explicitly.

    Under ``fit``, every worker then reads the same batches and each replica gets its slice of
    each batch, so a step sees exactly the batch a single process would. (AUTO would shard by
    file, and a split of one file gives the other workers nothing.)
    """
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def weights_digest(model) -> str:
    """sha256 over the model's weights (their bytes, in order): equal iff the weights are."""
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(weight.tobytes())
    return digest.hexdigest()
