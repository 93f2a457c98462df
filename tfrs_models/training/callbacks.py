"""Keras callbacks of the training harness, shared by the model families.

They run at every epoch end in the order given to ``fit`` (Keras keeps the list's order):
``Validation`` puts the validation figures in ``logs``; ``KeepBest`` reads them, marks the
epoch ``kept`` when it beats the best so far, writes those weights and stops the run after
``patience`` epochs without one; ``ScalarLogger`` writes TensorBoard scalars. Their state (the
best loss, the epochs waited) lives in ``tf.Variable``s of an :class:`EarlyStoppingState`, so
a checkpoint of it resumes a run where it stopped — tf_keras' ``BackupAndRestore`` keeps no
callback state and deletes its backup when a run ends, so a run cannot be resumed with a larger
epoch cap. The progress bar is Keras' own (``fit(verbose=1)``).
"""
from __future__ import annotations

import math
from pathlib import Path

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar written without the ``tensorboard`` package (not installed here):
    ``tf.summary.write`` with the scalars plugin's metadata is what ``tf.summary.scalar`` does
    (tf_keras' ``TensorBoard`` callback calls the latter and fails without the package)."""
    from tensorflow.core.framework import summary_pb2  # noqa: PLC0415

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


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


class ScalarLogger(tf.keras.callbacks.Callback):
    """TensorBoard scalars of chosen ``logs`` entries at every epoch end.

    Args:
        log_dir: the event files' directory (``RUN/tensorboard``).
        tags: ``{logs key: tag}``; keys missing from an epoch's logs are skipped.
    """

    def __init__(self, log_dir, tags: dict):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(log_dir)))
        self.tags = dict(tags)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for key, tag in self.tags.items():
                if logs and key in logs and logs[key] is not None:
                    write_scalar(tag, float(logs[key]), epoch)
        self.writer.flush()
