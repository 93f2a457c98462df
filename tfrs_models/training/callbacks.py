"""Keras callbacks of the training harness.

* ``EarlyStopping``: Keras' (the run ends on its best weights), with a state that can be saved
  and resumed;
* ``Checkpoints``: at every epoch end, what a run needs to resume from that epoch (model and
  optimizer, the early-stopping state and its best weights, the history so far), in
  ``RUN/checkpoints``; ``Checkpoints.resume`` reads it back;
* ``ScalarLogger``: each epoch's logs as TensorBoard scalars in ``RUN/tensorboard/{train,
  validation}`` (Keras' layout, tags ``epoch_<name>``), written without the ``tensorboard``
  package, which Keras' ``TensorBoard`` callback needs and this environment lacks.

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


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(value))
