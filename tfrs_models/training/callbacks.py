"""Keras callbacks of the training harness, shared by both model families.

* ``EarlyStopping``: Keras' on a validation loss (lower is better, ``min_delta``), ending the
  run on its best weights; ``improved`` says whether the last epoch became the best (the
  selling-point history's ``kept`` mark); its state can be saved and resumed;
* ``Checkpoints``: at every epoch end, what a run needs to resume from that epoch (model,
  optimizers and whatever else it is given, the early-stopping state and its best weights, the
  history so far), in ``RUN/checkpoints``; ``Checkpoints.resume`` reads it back and refuses
  another run's checkpoints;
* ``ScalarLogger``: each epoch's logs as TensorBoard scalars in ``RUN/tensorboard/{train,
  validation}`` (Keras' layout, tags ``epoch_<name>``), written without the ``tensorboard``
  package, which Keras' ``TensorBoard`` callback needs and this environment lacks;
* ``Validation`` and ``EpochEnd``: the selling-point family validates with numpy over the
  whole split (the figures go into ``logs``) and swaps its weight average in around the
  validation and early stopping, each in its place among the others: Keras runs the callbacks
  in the order of the list.

The Keras progress bar is ``fit(verbose=1)``.
"""
from __future__ import annotations

import json
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
    """Keras' early stopping on ``monitor`` (lower is better), ending on its best weights.

    An epoch is better when ``loss + min_delta < best`` (NaN never is); after ``patience``
    epochs in a row without one (from the second epoch on) training stops. ``improved`` is
    whether the last epoch was better; ``resumed`` (a ``state()`` with its ``best_weights``,
    from ``Checkpoints.resume``) is where the next ``fit`` starts from.
    """

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0):
        super().__init__(monitor=monitor, mode="min", patience=patience, min_delta=min_delta,
                         restore_best_weights=True)
        self.resumed: dict | None = None
        self.improved = False

    def state(self) -> dict:
        return {"wait": int(self.wait), "best": float(self.best), "best_epoch": int(self.best_epoch),
                "stopped_epoch": int(self.stopped_epoch)}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.improved = False
        if self.resumed is not None:
            state = dict(self.resumed)
            self.best_weights = state.pop("best_weights", None)
            for name, value in state.items():
                setattr(self, name, value)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.improved = self.best_epoch == epoch and self.wait == 0


class Checkpoints(tf.keras.callbacks.Callback):
    """Everything a run resumes from, saved at each epoch end.

    ``directory/<name>-<epochs done>``: ``objects`` (``{"model": …, "optimizer": …, …}``, a
    ``tf.train.Checkpoint``, the last two kept; ``name`` is the run's ``phase``, or ``ckpt``);
    ``directory/best_weights.npz``: early stopping's best weights; ``directory/state.json``
    (written last, so it always names a complete checkpoint): epochs done, the phase, the
    history, the early-stopping state and ``identity`` (what the run trains; a resume must
    match it).

    ``history`` (the history so far) grows by ``record(history, epoch, logs)`` at each epoch
    end; by default the logs are appended to a ``{name: [value per epoch]}``.

    Under multi_worker every worker makes these calls (saving reads the variables with collective
    ops); only the chief's ``directory`` is the run's (``distribute.write_dir``).
    """

    def __init__(self, directory: Path, objects: dict, identity: dict,
                 early_stopping: EarlyStopping | None = None, history=None, record=None,
                 phase: str | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.identity = _as_json(identity)
        self.early_stopping = early_stopping
        self.history = history if history is not None else {}
        self.record = record or _record_logs
        self.phase = phase
        self._manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**objects), str(self.directory), max_to_keep=2,
            checkpoint_name=phase or "ckpt")

    def on_epoch_end(self, epoch, logs=None):
        self.record(self.history, epoch, logs or {})
        self._manager.save(checkpoint_number=epoch + 1)
        state = {"epochs_done": epoch + 1, "identity": self.identity, "history": self.history}
        if self.phase is not None:
            state["phase"] = self.phase
        if self.early_stopping is not None:
            state["early_stopping"] = self.early_stopping.state()
            if self.early_stopping.best_epoch == epoch and self.early_stopping.best_weights:
                np.savez(self.directory / BEST_WEIGHTS, *self.early_stopping.best_weights)
        temporary = self.directory / (STATE + ".tmp")
        temporary.write_text(json.dumps(state, indent=1))
        temporary.replace(self.directory / STATE)

    @staticmethod
    def resume(source: Path, objects: dict, identity: dict) -> dict | None:
        """Restore a run saved in ``source`` into ``objects`` (built, as given to
        ``Checkpoints``).

        Returns None when ``source`` holds no checkpoint, else ``{"epochs_done", "history",
        "early_stopping", "phase"?}`` with the early-stopping state's ``best_weights`` loaded.
        Raises UserError when the saved run trains something else than ``identity``, or when
        ``source`` holds checkpoints without a state (another harness wrote them).
        """
        source = Path(source)
        if not (source / STATE).exists():
            if tf.train.latest_checkpoint(str(source)):
                raise UserError(f"{source} holds checkpoints without {STATE} (written by an "
                                "earlier training harness); they cannot be resumed: use a new "
                                f"--run-dir or delete {source}")
            return None
        state = json.loads((source / STATE).read_text())
        identity = _as_json(identity)
        if state["identity"] != identity:
            changed = sorted(k for k in set(identity) | set(state["identity"])
                             if identity.get(k) != state["identity"].get(k))
            raise UserError(f"{source} holds checkpoints of another run (it differs in "
                            f"{', '.join(changed)}); use a new --run-dir or delete {source}")
        path = source / f"{state.get('phase') or 'ckpt'}-{state['epochs_done']}"
        tf.train.Checkpoint(**objects).restore(str(path)).assert_existing_objects_matched()
        early = state.get("early_stopping")
        if early is not None and (source / BEST_WEIGHTS).exists():
            with np.load(source / BEST_WEIGHTS) as saved:
                early["best_weights"] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        return state


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


class EpochEnd(tf.keras.callbacks.Callback):
    """Calls ``fn(epoch, logs)`` at every epoch end (for the run's own bookkeeping, in its
    place among the other callbacks)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(epoch, logs)


def fit_epochs(resumed: dict | None, cap: int) -> dict:
    """``fit``'s ``initial_epoch``/``epochs`` of a run resumed from ``resumed`` (None: a new run)
    with an epoch cap of ``cap``: on from the epochs done, to a larger cap if given; a run that
    stopped early is finished (zero epochs, ending on its best weights)."""
    if resumed is None:
        return {"epochs": cap}
    done = resumed["epochs_done"]
    stopped = (resumed.get("early_stopping") or {}).get("stopped_epoch", 0) > 0
    return {"initial_epoch": done, "epochs": done if stopped else max(cap, done)}


def _record_logs(history: dict, epoch: int, logs: dict) -> None:
    for name, value in logs.items():
        history.setdefault(name, []).append(float(value))


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(value))
