"""Adam for steps that train some of a model's sources (001 Algorithm 1), and the weight average.

Under Algorithm 1 a step draws one source and updates only the parameters its loss reaches.
Keras ``fit`` has one ``train_function``, and an ``apply_gradients`` under ``tf.cond`` is refused
by ``MirroredStrategy`` (its ``merge_call`` may not sit in control flow), so every step runs
both heads — the source not drawn on an empty batch — and this optimizer leaves a variable and
its slots as they are when none of the step's tasks with rows reaches it. A zero-gradient Adam
step would not do: the momentum would still move the other head.
"""
from __future__ import annotations

import numpy as np

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


class WeightAverage(tf.Module):
    """Bias-corrected exponential moving average of ``variables``, one slot each.

    After t updates, ``m = Σ_s (1 − d)·d^(t−s)·w_s`` (from ``m = 0``), read as ``m / (1 − d^t)``,
    Adam's bias correction, so early on it averages all steps so far. ``swap_in`` puts the
    average in the variables (for validation, the kept weights and the export) and keeps the
    iterate aside; ``swap_out`` puts the iterate back.
    """

    def __init__(self, variables, decay: float):
        super().__init__(name="weight_average")
        self.decay = float(decay)
        self._variables = list(variables)
        self.slots = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"average_{i}",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                      for i, v in enumerate(self._variables)]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="average_updates",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._iterate = None

    def update(self):
        """``m ← d·m + (1 − d)·w`` for every variable (call once per step)."""
        self.updates.assign_add(1)
        for slot, v in zip(self.slots, self._variables):
            slot.assign(self.decay * slot + (1.0 - self.decay) * tf.cast(v, slot.dtype))

    def swap_in(self) -> None:
        """The bias-corrected average into the variables (no-op before the first update)."""
        updates = int(self.updates.numpy())
        if updates == 0 or self._iterate is not None:
            return
        correction = 1.0 - self.decay ** float(updates)
        self._iterate = [tf.identity(v) for v in self._variables]
        for slot, v in zip(self.slots, self._variables):
            v.assign(slot / correction)

    def swap_out(self) -> None:
        """The iterate back into the variables (no-op unless swapped in)."""
        if self._iterate is None:
            return
        for kept, v in zip(self._iterate, self._variables):
            v.assign(kept)
        self._iterate = None


class SourceAdam(tf.keras.optimizers.Adam):
    """Adam that updates a variable only on steps where a task with rows reaches it.

    Args:
        learning_rate: Adam's rate.
        reach: ``[(variable, tasks)]``: the tasks whose loss has a gradient for the variable
            (variables not listed are reached by every task).
        tasks: the task names, in a fixed order.
        average: a :class:`WeightAverage` updated after every step, or None.
    """

    def __init__(self, learning_rate, reach, tasks, average: WeightAverage | None = None,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._tasks = tuple(tasks)
        self._reach = {self._var_key(v): np.array([t in reached for t in self._tasks])
                       for v, reached in reach}
        self._average = average
        self._active = tf.Variable([True] * len(self._tasks), trainable=False, name="active_tasks",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def select_tasks(self, active: dict) -> None:
        """The tasks with rows this step: ``{task: scalar bool tensor}`` (missing = none)."""
        self._active.assign(tf.stack([tf.convert_to_tensor(active.get(t, False))
                                      for t in self._tasks]))

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        iterations = super().apply_gradients(grads_and_vars, *args, **kwargs)
        if self._average is not None:
            self._average.update()
        return iterations

    def update_step(self, gradient, variable):
        reached = self._reach.get(self._var_key(variable))
        if reached is None or reached.all():
            return super().update_step(gradient, variable)

        def update():
            super(SourceAdam, self).update_step(gradient, variable)
            return tf.constant(True)

        touched = tf.reduce_any(tf.logical_and(self._active, tf.constant(reached)))
        tf.cond(touched, update, lambda: tf.constant(False))
