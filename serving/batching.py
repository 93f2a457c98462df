"""Server-side request batching, as TF Serving's ``--enable_batching`` (``BatchingSession``).

Concurrent Predict requests for the same servable (model version), signature and per-row
shapes are merged along dimension 0 into one signature call and the outputs are split back, so
the fixed cost of a call (0.3–0.5 ms for a small model here) is paid once per batch instead of
once per request. Scheduling follows TF Serving's ``BasicBatchScheduler``: a batch is closed
when it holds ``max_batch_size`` rows or its oldest request has waited ``batch_timeout_micros``
(0 means: as soon as a batch thread is free, so batches grow only while every thread is busy);
``num_batch_threads`` batches run at once; more than ``max_enqueued_batches`` waiting batches
give ``UNAVAILABLE``; a request larger than ``max_batch_size`` is rejected; with
``allowed_batch_sizes`` a batch is padded (copies of its first row) up to the next allowed size.

Local choices where TF Serving has no answer: a batch whose merged call fails is re-run request
by request, so one bad request gets its own error and never fails the others; a signature whose
inputs or outputs lack a batch dimension, or a request whose inputs disagree on dimension 0,
runs unbatched. Only Predict (REST and gRPC) is batched; Classify/Regress run directly.

The parameters file is TF Serving's text-proto ``BatchingParameters``
(``session_bundle_config.proto``, TFSERVING_CONTRACT.md §3.5). That message is not in the
tensorflow-serving-api wheel, so its descriptor is declared here (private descriptor pool).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from serving.errors import Code, ServingError, invalid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingParameters:
    """``tensorflow.serving.BatchingParameters``; defaults are ``BasicBatchScheduler::Options``'."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0              # 0: one per CPU
    allowed_batch_sizes: tuple[int, ...] = ()
    thread_pool_name: str = "model_server_batch_threads"

    def __post_init__(self):
        if self.max_batch_size <= 0:
            raise ValueError("max_batch_size must be positive")
        if self.batch_timeout_micros < 0:
            raise ValueError("batch_timeout_micros must be non-negative")
        if self.max_enqueued_batches <= 0:
            raise ValueError("max_enqueued_batches must be positive")
        if self.num_batch_threads < 0:
            raise ValueError("num_batch_threads must be positive")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] <= 0:
                raise ValueError("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise ValueError("final entry in allowed_batch_sizes must equal max_batch_size")

    @property
    def threads(self) -> int:
        return self.num_batch_threads or (os.cpu_count() or 1)


_INT64_FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                 "max_execution_batch_size")
_MESSAGE_CLASS = None


def _batching_parameters_class():
    """The ``BatchingParameters`` message class, built from a declared descriptor."""
    global _MESSAGE_CLASS
    if _MESSAGE_CLASS is not None:
        return _MESSAGE_CLASS
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fd = descriptor_pb2.FileDescriptorProto(name="adpush/serving/batching_parameters.proto",
                                            package="tensorflow.serving", syntax="proto3",
                                            dependency=["google/protobuf/wrappers.proto"])
    msg = fd.message_type.add(name="BatchingParameters")
    F = descriptor_pb2.FieldDescriptorProto
    fields = [(name, F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL) for name in _INT64_FIELDS]
    fields += [("thread_pool_name", F.TYPE_MESSAGE, ".google.protobuf.StringValue", F.LABEL_OPTIONAL),
               ("allowed_batch_sizes", F.TYPE_INT64, None, F.LABEL_REPEATED),
               ("pad_variable_length_inputs", F.TYPE_BOOL, None, F.LABEL_OPTIONAL),
               ("enable_large_batch_splitting", F.TYPE_MESSAGE, ".google.protobuf.BoolValue", F.LABEL_OPTIONAL)]
    for number, (name, ftype, type_name, label) in enumerate(fields, start=1):
        field = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            field.type_name = type_name
    pool.Add(fd)
    _MESSAGE_CLASS = message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
    return _MESSAGE_CLASS


def parse_batching_parameters(text: str) -> BatchingParameters:
    """A ``--batching_parameters_file`` text proto → ``BatchingParameters`` (ValueError if bad)."""
    from google.protobuf import text_format

    proto = _batching_parameters_class()()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as err:
        raise ValueError(f"Error parsing text-format tensorflow.serving.BatchingParameters: {err}") from err
    if proto.pad_variable_length_inputs:
        raise ValueError("pad_variable_length_inputs is not supported by the local server")
    if proto.HasField("enable_large_batch_splitting") and proto.enable_large_batch_splitting.value:
        raise ValueError("enable_large_batch_splitting is not supported by the local server")
    kw: dict[str, Any] = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if proto.HasField(name):
            kw[name] = int(getattr(proto, name).value)
    if proto.allowed_batch_sizes:
        kw["allowed_batch_sizes"] = tuple(int(v) for v in proto.allowed_batch_sizes)
    if proto.HasField("thread_pool_name"):
        kw["thread_pool_name"] = proto.thread_pool_name.value
    return BatchingParameters(**kw)


# ------------------------------------------------------------------------------------------------


class _Task:
    __slots__ = ("inputs", "size", "future", "enqueued")

    def __init__(self, inputs: Mapping[str, np.ndarray], size: int):
        self.inputs, self.size = inputs, size
        self.future: Future = Future()
        self.enqueued = time.monotonic()


class _Queue:
    __slots__ = ("servable", "signature", "tasks", "rows")

    def __init__(self, servable, signature: str):
        self.servable, self.signature = servable, signature
        self.tasks: list[_Task] = []
        self.rows = 0


class BatchScheduler:
    """A shared pool of batch threads over one queue per (servable, signature, row shapes)."""

    def __init__(self, params: BatchingParameters | None = None):
        self.params = params or BatchingParameters()
        self._queues: dict[tuple, _Queue] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self.stats = {"batches": 0, "requests": 0, "largest_batch": 0}   # rows; read for tests/bench
        self._threads = [threading.Thread(target=self._work, name=f"{self.params.thread_pool_name}-{i}", daemon=True)
                         for i in range(self.params.threads)]
        for t in self._threads:
            t.start()

    # -- requests --------------------------------------------------------------------------------
    def submit(self, servable, signature: str, inputs: Mapping[str, np.ndarray], size: int) -> Future:
        """Queue one request of ``size`` rows; the future gets ``{alias: ndarray}`` or a ServingError."""
        p = self.params
        if size > p.max_batch_size:
            raise invalid(f"Task size {size} is larger than maximum input batch size {p.max_batch_size}")
        key = (id(servable), signature,
               tuple((alias, arr.dtype.str, arr.shape[1:]) for alias, arr in sorted(inputs.items())))
        task = _Task(inputs, size)
        with self._cond:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, "Batch scheduler is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(servable, signature)
            if math.ceil((queue.rows + size) / p.max_batch_size) > p.max_enqueued_batches:
                raise ServingError(Code.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full")
            queue.tasks.append(task)
            queue.rows += size
            self._cond.notify()
        return task.future

    def stop(self, timeout: float = 30.0) -> None:
        """Run what is queued, then stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # -- batch threads ---------------------------------------------------------------------------
    def _next_batch(self) -> tuple[_Queue, list[_Task]] | None:
        """Under the lock: the ready batch whose oldest request waited longest, or None."""
        p = self.params
        timeout = p.batch_timeout_micros / 1e6
        now = time.monotonic()
        best = None
        for key, queue in self._queues.items():
            if not queue.tasks:
                continue
            head = queue.tasks[0]
            ready = queue.rows >= p.max_batch_size or now - head.enqueued >= timeout or self._stopping
            if ready and (best is None or head.enqueued < best[1].tasks[0].enqueued):
                best = (key, queue)
        if best is None:
            return None
        key, queue = best
        batch, rows = [], 0
        while queue.tasks and rows + queue.tasks[0].size <= p.max_batch_size:
            task = queue.tasks.pop(0)
            queue.rows -= task.size
            # A caller that gave up (REST deadline) cancelled its future: drop it. Once running,
            # a future can no longer be cancelled, so set_result below cannot fail.
            if task.future.set_running_or_notify_cancel():
                batch.append(task)
                rows += task.size
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], rows)
        if not queue.tasks:
            del self._queues[key]
        return queue, batch

    def _wait_seconds(self) -> float | None:
        """Under the lock: how long until the oldest queued request times out (None: nothing queued)."""
        heads = [q.tasks[0].enqueued for q in self._queues.values() if q.tasks]
        if not heads:
            return None
        return max(0.0, min(heads) + self.params.batch_timeout_micros / 1e6 - time.monotonic())

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    found = self._next_batch()
                    if found is not None:
                        break
                    if self._stopping and not self._queues:
                        return
                    self._cond.wait(self._wait_seconds())
            queue, batch = found
            if not batch:
                continue
            try:
                self._run(queue.servable, queue.signature, batch)
            except BaseException as err:  # noqa: BLE001 - never leave a caller waiting
                log.exception("batch failed")
                for task in batch:
                    if not task.future.done():
                        task.future.set_exception(ServingError(Code.INTERNAL, f"Batch failed: {err}"))

    def _run(self, servable, signature: str, batch: list[_Task]) -> None:
        if len(batch) == 1 and not self.params.allowed_batch_sizes:
            self._run_one(servable, signature, batch[0])
            return
        rows = sum(t.size for t in batch)
        padded = next((s for s in self.params.allowed_batch_sizes if s >= rows), rows)
        merged = {}
        for alias in batch[0].inputs:
            parts = [t.inputs[alias] for t in batch]
            if padded > rows:
                first = parts[0][:1]
                parts.append(np.repeat(first, padded - rows, axis=0))
            merged[alias] = np.concatenate(parts, axis=0)
        try:
            outputs = servable.run_signature(signature, merged)
        except ServingError:
            outputs = None   # a bad request in the batch: re-run one by one below
        if outputs is not None and any(np.ndim(v) == 0 or v.shape[0] != padded for v in outputs.values()):
            log.warning("signature %s of %s has an output without a batch dimension: running unbatched",
                        signature, getattr(servable, "name", "?"))
            servable.unbatchable.add(signature)
            outputs = None
        if outputs is None:
            for task in batch:
                self._run_one(servable, signature, task)
            return
        start = 0
        for task in batch:
            end = start + task.size
            task.future.set_result({alias: value[start:end] for alias, value in outputs.items()})
            start = end

    @staticmethod
    def _run_one(servable, signature: str, task: _Task) -> None:
        try:
            task.future.set_result(servable.run_signature(signature, task.inputs))
        except ServingError as err:
            task.future.set_exception(err)
        except Exception as err:  # noqa: BLE001
            task.future.set_exception(ServingError(Code.INTERNAL, str(err)))


__all__ = ["BatchingParameters", "BatchScheduler", "parse_batching_parameters"]
