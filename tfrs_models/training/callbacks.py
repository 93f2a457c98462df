"""Keras callbacks of the training harness.

* ``EarlyStopping``: Keras' (the run ends on its best weights), with a state that can be saved
  and resumed;
* ``Checkpoints``: at every epoch end, what a run needs to resume from that epoch (model and
  optimizer, the early-stopping state and its best weights, the history so far), in
  ``RUN/checkpoints``; ``Checkpoints.resume`` reads it back;
* ``ScalarLogger``: each epoch's logs as TensorBoard scalars in ``RUN/tensorboard/{train,
  validation}`` (Keras' layout, tags ``epoch_<name>``), written without the ``tensorboard``
  package, which Keras' ``TensorBoard`` callback needs and this environment lacks.

The selling-point family validates with numpy over the whole split and keeps its state in
``tf.Variable``s of its run checkpoint (two phases, the weight average swapped in around
validation), so it uses, in this order at each epoch end: ``Validation`` (the figures into
``logs``), ``KeepBest`` (marks the epoch ``kept`` when it beats the best so far, writes those
weights, stops after ``patience`` epochs without one; its ``EarlyStoppingState`` is resumable)
and ``EpochEnd`` (the run's own bookkeeping in its place among the others). Keras runs the
callbacks in the order of the list.

The Keras progress bar is ``fit(verbose=1)``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()

STATE = "state.json"
BEST_WEIGHTS = "best_weights.npz"


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar written without the ``tensorboard`` package (not installed here):
    ``tf.summary.write`` with the scalars plugin's metadata is what ``tf.summary.scalar`` does."""
    from tensorflow.core.framework import summary_pb2  # noqa: PLC0415

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


class ScalarLogger(tf.keras.callbacks.Callback):
    """Every epoch's logs as scalars: ``val_<name>`` in ``logdir/validation``, the rest in
    ``logdir/train``, each tagged ``epoch_<name>`` at step = epoch (0-based)."""

    def __init__(self, logdir: Path):
        super().__init__()
        self.logdir = Path(logdir)
        self._writers = {}

    def on_train_begin(self, logs=None):
        self._writers = {part: tf.summary.create_file_writer(str(self.logdir / part))
                         for part in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            with self._writers[part].as_default():
                write_scalar(f"epoch_{tag}", value, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


class EarlyStopping(tf.keras.callbacks.EarlyStopping):
    """Keras' early stopping, whose state ``Checkpoints`` saves and restores."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.resumed: dict | None = None

    def state(self) -> dict:
        return {"wait": int(self.wait), "best": float(self.best), "best_epoch": int(self.best_epoch),
                "stopped_epoch": int(self.stopped_epoch)}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resumed is not None:
            state = dict(self.resumed)
            self.best_weights = state.pop("best_weights", None)
            for name, value in state.items():
                setattr(self, name, value)


class Checkpoints(tf.keras.callbacks.Callback):
    """Everything a run resumes from, saved at each epoch end.

    ``directory/ckpt-<epochs done>``: model and optimizer (``tf.train.Checkpoint``, the last two
    kept); ``directory/best_weights.npz``: early stopping's best weights; ``directory/state.json``
    (written last, so it always names a complete checkpoint): epochs done, the history, the
    early-stopping state and ``identity`` (what the run trains; a resume must match it).

    Under multi_worker every worker makes these calls (saving reads the variables with collective
    ops); only the chief's ``directory`` is the run's (``distribute.write_dir``).
    """

    def __init__(self, directory: Path, optimizer, identity: dict,
                 early_stopping: EarlyStopping | None = None, history: dict | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.identity = _as_json(identity)
        self.early_stopping = early_stopping
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self._optimizer = optimizer
        self._manager = None

    def set_model(self, model):
        super().set_model(model)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=self._optimizer)
        self._manager = tf.train.CheckpointManager(checkpoint, str(self.directory), max_to_keep=2)

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self._manager.save(checkpoint_number=epoch + 1)
        state = {"epochs_done": epoch + 1, "identity": self.identity, "history": self.history}
        if self.early_stopping is not None:
            state["early_stopping"] = self.early_stopping.state()
            if self.early_stopping.best_epoch == epoch and self.early_stopping.best_weights:
                np.savez(self.directory / BEST_WEIGHTS, *self.early_stopping.best_weights)
        temporary = self.directory / (STATE + ".tmp")
        temporary.write_text(json.dumps(state, indent=1))
        temporary.replace(self.directory / STATE)

    @staticmethod
    def resume(source: Path, model, optimizer, identity: dict) -> dict | None:
        """Restore a run saved in ``source`` into ``model`` (built) and ``optimizer``.

        Returns None when ``source`` holds no state, else ``{"epochs_done", "history",
        "early_stopping"}`` with the early-stopping state's ``best_weights`` loaded. Raises
        UserError when the saved run trains something else than ``identity``.
        """
        source = Path(source)
        if not (source / STATE).exists():
            return None
        state = json.loads((source / STATE).read_text())
        identity = _as_json(identity)
        if state["identity"] != identity:
            changed = sorted(k for k in set(identity) | set(state["identity"])
                             if identity.get(k) != state["identity"].get(k))
            raise UserError(f"{source} holds checkpoints of another run (it differs in "
                            f"{', '.join(changed)}); use a new --run-dir or delete {source}")
        optimizer.build(model.trainable_variables)
        path = source / f"ckpt-{state['epochs_done']}"
        tf.train.Checkpoint(model=model, optimizer=optimizer).restore(str(path)).assert_existing_objects_matched()
        early = state.get("early_stopping")
        if early is not None and (source / BEST_WEIGHTS).exists():
            with np.load(source / BEST_WEIGHTS) as saved:
                early["best_weights"] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return state


class EarlyStoppingState(tf.Module):
    """What early stopping remembers between epochs, as variables a checkpoint carries:
    ``best`` (the best monitored loss so far, negated: -inf = none yet) and ``wait`` (epochs
    since it last improved)."""

    def __init__(self, name="early_stopping"):
        super().__init__(name=name)
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")

    def reset(self) -> None:
        self.best.assign(-math.inf)
        self.wait.assign(0)

    @property
    def best_loss(self) -> float:
        return -float(self.best)


class Validation(tf.keras.callbacks.Callback):
    """Puts ``compute()`` (a dict of floats, e.g. ``{"valid_auc": …, "valid_logloss": …}``
    over the whole validation split) into the epoch's ``logs``."""

    def __init__(self, compute, label: str = "valid", verbose: int = 1):
        super().__init__()
        self.compute, self.label, self.verbose = compute, label, verbose

    def on_epoch_end(self, epoch, logs=None):
        figures = self.compute()
        if logs is not None:
            logs.update(figures)
        if self.verbose:
            print(f"  {self.label}: " + " ".join(f"{k} {v:.4f}" for k, v in figures.items()))


class KeepBest(tf.keras.callbacks.Callback):
    """Early stopping on ``monitor`` (lower is better) with the best weights kept.

    An epoch is better when ``-loss > best + min_delta`` (Keras' ``min_delta``; NaN never is):
    it gets ``logs["kept"] = True``, ``save()`` writes its weights and the wait restarts.
    After ``max(1, patience)`` epochs in a row without one, training stops.
    """

    def __init__(self, state: EarlyStoppingState, save, monitor: str, min_delta: float = 0.0,
                 patience: int = 1):
        super().__init__()
        self.state, self.save, self.monitor = state, save, monitor
        self.min_delta, self.patience = float(min_delta), max(1, int(patience))

    def on_epoch_end(self, epoch, logs=None):
        kept = bool(-float(logs[self.monitor]) > float(self.state.best) + self.min_delta)
        logs["kept"] = kept
        if kept:
            self.state.best.assign(-float(logs[self.monitor]))
            self.state.wait.assign(0)
            self.save()
        else:
            self.state.wait.assign_add(1)
        if int(self.state.wait) >= self.patience:
            self.model.stop_training = True

    def exhausted(self) -> bool:
        """True when the patience ran out already (a resumed run has nothing left to do)."""
        return int(self.state.wait) >= self.patience


class EpochEnd(tf.keras.callbacks.Callback):
    """Calls ``fn(epoch, logs)`` at every epoch end (for the run's own bookkeeping, in its
    place among the other callbacks)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(epoch, logs)


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(value))
