"""Training strategies of 001 for the selling-point family.

- ``joint`` (baseline): every step takes one SF batch and, for MTDL/AMTDL, one ad-click batch
  and minimises the sum of both mean losses (Eq. 14 + Eq. 15).
- ``alternating`` (Algorithm 1 of 001): every step draws the main (SF) source or the auxiliary
  (ad-click) source with probability 1:k and updates only the parameters that source's loss
  touches (shared embeddings + MLP + its own head). By default ``k = rows(ad_click train) /
  rows(sf train)``, 001's rule: both sources are worked through about equally often by the end.
- ``pretrain_finetune``: train the auxiliary task until its validation AUC stops improving,
  keep its best weights (the shared parameters carry over), then fine-tune on the main task.

Early stopping uses the validation split only: a phase ends when the validation logloss has not
improved for ``patience`` epochs (issue 13: the profile × keyword term is learnt only after a
long plateau, which patience 2 on a 3-epoch cap cut short), and keeps its best-logloss weights.
``train_with_learning_rates`` trains one run per learning rate and keeps the one with the best
validation logloss (the same rule for every model of a comparison). State is checkpointed
at every epoch end (``RUN/checkpoints``), so an interrupted run resumes from its last finished
epoch; TensorBoard logs go to ``RUN/tensorboard``; a Keras progress bar shows each epoch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adpush_core.errors import UserError
from tfrs_models import metrics
from adpush_core.tfenv import import_tensorflow
from tfrs_models.input import DataSpec, InMemorySplit, make_dataset
from tfrs_models.selling_point.config import RunConfig
from tfrs_models.selling_point.models import AD, SF, build_model
from tfrs_models.selling_point.predict import predict_split

tf = import_tensorflow()

PHASE_PRETRAIN, PHASE_MAIN = 0, 1
WEIGHTS = "model/weights"  # RUN/model/weights: the best weights, read by evaluate


def _scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar written without the ``tensorboard`` package (not installed here):
    ``tf.summary.write`` with the scalars plugin's metadata is what ``tf.summary.scalar`` does."""
    from tensorflow.core.framework import summary_pb2  # noqa: PLC0415

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


def default_k(spec: DataSpec) -> float:
    """Algorithm 1's auxiliary:main draw ratio: rows(ad_click train) / rows(sf train)."""
    sf = spec.dataset(SF).row_counts.get("train", 0)
    ad = spec.dataset(AD).row_counts.get("train", 0)
    return float(ad) / sf if sf and ad else 1.0


@dataclass
class TrainResult:
    """What ``train`` leaves behind (everything is also on disk in ``run_dir``)."""

    run_dir: Path
    history: list = field(default_factory=list)
    best_valid_auc: float = float("nan")   # at the best-logloss epoch
    model: object = None
    best_valid_logloss: float = float("nan")


class Trainer:
    """Custom training loop for ``SellingPointModel`` under any ``tf.distribute`` strategy.

    Args:
        spec: data spec; run_config: model + training configuration; run_dir: output directory.
        distribution: a ``tf.distribute.Strategy`` (e.g. ``MirroredStrategy``); None = default.
        hooks: ``{"pretrain_end" | "finetune_start": callable(model)}`` (for tests/analysis).
    """

    def __init__(self, spec: DataSpec, run_config: RunConfig, run_dir, distribution=None,
                 verbose: int = 1, hooks=None):
        self.spec = spec
        self.run_config = run_config
        self.cfg = run_config.train
        self.run_dir = Path(run_dir)
        self.verbose = verbose
        self.hooks = hooks or {}
        if not run_config.model.multi_task and self.cfg.strategy != "joint":
            raise UserError(f"model bm has no auxiliary task; strategy {self.cfg.strategy!r} "
                            "needs mtdl or amtdl")
        self.k = float(self.cfg.k) if self.cfg.k is not None else default_k(spec)
        if self.k <= 0:
            raise UserError(f"k must be > 0, got {self.k}")
        self.distribution = distribution or tf.distribute.get_strategy()
        tf.keras.utils.set_random_seed(self.cfg.seed)
        with self.distribution.scope():
            self.model = build_model(spec, run_config.model)
            self.optimizers = {"main": tf.keras.optimizers.Adam(self.cfg.learning_rate),
                               "finetune": tf.keras.optimizers.Adam(self.cfg.learning_rate)}
            for optimizer in self.optimizers.values():
                # Slots for every variable up front: steps update subsets (Algorithm 1).
                optimizer.build(self.model.trainable_variables)
        self.state = {name: tf.Variable(0, dtype=tf.int64, name=name, trainable=False)
                      for name in ("step", "epoch", "phase", "wait", "sf_updates", "ad_updates")}
        # The best validation logloss so far, negated (higher is better, -inf = none yet).
        self.best = tf.Variable(-math.inf, dtype=tf.float64, name="best", trainable=False)
        # The moving average of the weights (``weight_average``), one slot per variable.
        self.average = tf.Module(name="weight_average")
        if self.cfg.weight_average > 0:
            with self.distribution.scope():
                self.average.slots = [
                    tf.Variable(tf.zeros_like(v), trainable=False, name=f"average_{i}",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                    for i, v in enumerate(self.model.trainable_variables)]
                self.average.updates = tf.Variable(
                    0, dtype=tf.int64, trainable=False, name="average_updates",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.checkpoint = tf.train.Checkpoint(model=self.model, best=self.best,
                                              average=self.average,
                                              **self.optimizers, **self.state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.run_dir / "checkpoints"),
                                                  max_to_keep=2)
        self._steps: dict = {}
        self._in_memory: dict = {}  # task -> InMemorySplit of its train split (cache_input)
        self._iterate = None  # the Adam iterate while the weight average sits in the model
        self.history: list = []

    # -- one optimisation step ------------------------------------------------------------------
    def step_function(self, tasks: tuple, optimizer: str = "main"):
        """A compiled step minimising the mean losses of ``tasks`` over one batch each.

        Only variables with a gradient are updated, so a step on one source leaves the other
        source's private parameters (and their optimizer slots) untouched — Algorithm 1.
        """
        key = (tuple(tasks), optimizer)
        if key in self._steps:
            return self._steps[key]
        opt = self.optimizers[optimizer]
        global_batch = float(self.cfg.batch_size)

        def replica_step(batches):
            with tf.GradientTape() as tape:
                losses = {t: self.model.task_loss(t, batches[t], training=True) / global_batch
                          for t in tasks}
                total = tf.add_n(list(losses.values())) + self.model.prior_loss(tasks) / float(
                self.distribution.num_replicas_in_sync)
            variables = self.model.trainable_variables
            grads = tape.gradient(total, variables)
            opt.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
            if self.cfg.weight_average > 0:
                self._update_average(variables)
            return losses

        @tf.function
        def step(batches):
            per_replica = self.distribution.run(replica_step, args=(batches,))
            return {t: self.distribution.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for t, v in per_replica.items()}

        self._steps[key] = step
        return step

    def _update_average(self, variables):
        """One step of the moving average ``m ← d·m + (1 − d)·w`` (from ``m = 0``; read as
        ``m / (1 − d^t)``, Adam's bias correction, so early on it averages all steps so far)."""
        self.average.updates.assign_add(1)
        decay = self.cfg.weight_average
        for slot, v in zip(self.average.slots, variables):
            slot.assign(decay * slot + (1.0 - decay) * tf.cast(v, slot.dtype))

    def _use_average(self, on: bool) -> None:
        """``on``: put the bias-corrected average in the model, keeping the iterate aside;
        ``off``: put the iterate back. No-op without ``weight_average`` (or before a step)."""
        slots = getattr(self.average, "slots", None)
        if on and slots and int(self.average.updates) > 0:
            correction = 1.0 - self.cfg.weight_average ** float(int(self.average.updates))
            self._iterate = [tf.identity(v) for v in self.model.trainable_variables]
            for slot, v in zip(slots, self.model.trainable_variables):
                v.assign(slot / correction)
        elif not on and self._iterate is not None:
            for kept, v in zip(self._iterate, self.model.trainable_variables):
                v.assign(kept)
            self._iterate = None

    def _iterator(self, task: str, epoch: int):
        names = set(self.model.input_signature(task)) | {"clicked"}
        offset = 0 if task == SF else 1
        seed = self.cfg.seed * 7919 + epoch * 2 + offset
        if self.cfg.cache_input:
            if task not in self._in_memory:
                self._in_memory[task] = InMemorySplit(self.spec, task, "train", names)
            ds = self._in_memory[task].dataset(self.batch_size(task), seed)
        else:
            ds = make_dataset(self.spec, task, "train", self.batch_size(task), shuffle=True,
                              seed=seed, repeat=True, drop_remainder=True, names=names)
        return iter(self.distribution.experimental_distribute_dataset(ds))

    def batch_size(self, task: str) -> int:
        """Rows per batch of ``task``: ``batch_size``, or k times it for the ad source of a
        ``joint`` step under ``joint_batches="proportional"`` (its summed loss is still divided
        by ``batch_size``, so every row weighs the same)."""
        if (task == AD and self.cfg.strategy == "joint"
                and self.cfg.joint_batches == "proportional"):
            return max(1, round(self.k * self.cfg.batch_size))
        return self.cfg.batch_size

    def _batches_per_epoch(self, task: str) -> int:
        return max(1, self.spec.dataset(task).row_counts.get("train", 0) // self.cfg.batch_size)

    def schedule(self, phase: int, epoch: int) -> list:
        """The list of task tuples, one per step, of one epoch."""
        strategy = self.cfg.strategy
        if phase == PHASE_PRETRAIN:
            return [(AD,)] * self._batches_per_epoch(AD)
        if strategy == "joint":
            tasks = (SF, AD) if self.run_config.model.multi_task else (SF,)
            return [tasks] * self._batches_per_epoch(SF)
        if strategy == "alternating":
            n = max(1, round(self._batches_per_epoch(SF) * (1 + self.k)))
            draws = np.random.default_rng([self.cfg.seed, epoch]).random(n)
            return [(SF,) if d < 1.0 / (1.0 + self.k) else (AD,) for d in draws]
        return [(SF,)] * self._batches_per_epoch(SF)  # pretrain_finetune, main phase

    # -- epochs and phases ----------------------------------------------------------------------
    def validate(self, task: str) -> dict:
        pred = predict_split(self.model, self.spec, task, "valid", batch_size=1024)
        return {"valid_auc": metrics.auc(pred["clicked"], pred["prob"]),
                "valid_logloss": metrics.logloss(pred["clicked"], pred["prob"])}

    def _save_history(self):
        (self.run_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def _run_phase(self, phase: int, max_epochs: int, valid_task: str, best_path: Path, writer):
        name = "pretrain" if phase == PHASE_PRETRAIN else "main"
        optimizer = "finetune" if (phase == PHASE_MAIN and
                                   self.cfg.strategy == "pretrain_finetune") else "main"
        if phase == PHASE_MAIN and int(self.state["epoch"]) == 0 and "finetune_start" in self.hooks \
                and self.cfg.strategy == "pretrain_finetune":
            self.hooks["finetune_start"](self.model)
        while (int(self.state["epoch"]) < max_epochs
               and int(self.state["wait"]) < max(1, self.cfg.patience)):
            epoch = int(self.state["epoch"])
            plan = self.schedule(phase, epoch)
            iterators = {t: self._iterator(t, epoch) for t in sorted({t for s in plan for t in s})}
            if self.verbose:
                print(f"[{name}] epoch {epoch + 1}/{max_epochs}")
            bar = tf.keras.utils.Progbar(len(plan), verbose=self.verbose)
            sums = {t: 0.0 for t in iterators}
            counts = {t: 0 for t in iterators}
            for i, tasks in enumerate(plan):
                out = self.step_function(tasks, optimizer)({t: next(iterators[t]) for t in tasks})
                step = int(self.state["step"].assign_add(1))
                values = []
                for t, v in out.items():
                    v = float(v)
                    sums[t] += v
                    counts[t] += 1
                    self.state["sf_updates" if t == SF else "ad_updates"].assign_add(1)
                    values.append((f"loss_{t}", v))
                    with writer.as_default():
                        _scalar(f"train/loss_{t}", v, step)
                bar.update(i + 1, values=values)
            self._use_average(True)  # validate (and keep as best) the averaged weights
            record = {"phase": name, "epoch": epoch,
                      **{f"train_loss_{t}": sums[t] / counts[t] for t in sums if counts[t]},
                      "steps": {t: counts[t] for t in counts},
                      **self.validate(valid_task)}
            with writer.as_default():
                for key in ("valid_auc", "valid_logloss"):
                    _scalar(f"{name}/{key}_{valid_task}", record[key], epoch)
            if self.verbose:
                print(f"  valid {valid_task}: auc {record['valid_auc']:.4f} "
                      f"logloss {record['valid_logloss']:.4f}")
            # NaN never improves; an improvement must exceed min_improvement (Keras' min_delta)
            record["kept"] = bool(-record["valid_logloss"] > float(self.best)
                                  + self.cfg.min_improvement)
            if record["kept"]:  # these weights become the run's until a better epoch
                self.best.assign(-record["valid_logloss"])
                self.state["wait"].assign(0)
                tf.train.Checkpoint(model=self.model).write(str(best_path))
            else:
                self.state["wait"].assign_add(1)
            self._use_average(False)
            self.state["epoch"].assign_add(1)
            self.history.append(record)
            self._save_history()
            self.manager.save(checkpoint_number=int(self.state["step"]))
        if Path(str(best_path) + ".index").exists():
            tf.train.Checkpoint(model=self.model).read(str(best_path)).expect_partial()

    def fit(self) -> TrainResult:
        """Train (resuming from ``RUN/checkpoints`` if present) and write ``RUN/model/weights``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.run_config.to_dict(), indent=1))
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint)
            if self.verbose:
                print(f"resuming from {self.manager.latest_checkpoint}")
            history = self.run_dir / "history.json"
            self.history = json.loads(history.read_text()) if history.exists() else []
        writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        if self.cfg.strategy == "pretrain_finetune" and int(self.state["phase"]) == PHASE_PRETRAIN:
            self._run_phase(PHASE_PRETRAIN, self.cfg.pretrain_epochs, AD,
                            self.run_dir / "best_pretrain" / "weights", writer)
            if "pretrain_end" in self.hooks:
                self.hooks["pretrain_end"](self.model)
            self.state["phase"].assign(PHASE_MAIN)
            self.state["epoch"].assign(0)
            self.state["wait"].assign(0)
            self.best.assign(-math.inf)
            self.manager.save(checkpoint_number=int(self.state["step"]))
        self.state["phase"].assign(PHASE_MAIN)
        self._run_phase(PHASE_MAIN, self.cfg.epochs, SF, self.run_dir / "best" / "weights", writer)
        tf.train.Checkpoint(model=self.model).write(str(self.run_dir / WEIGHTS))
        writer.flush()
        best = kept_epoch(self.history)
        return TrainResult(self.run_dir, self.history,
                           best["valid_auc"] if best else float("nan"), self.model,
                           best["valid_logloss"] if best else float("nan"))


def train(spec: DataSpec, run_config: RunConfig, run_dir, distribution=None, verbose: int = 1,
          hooks=None) -> TrainResult:
    """Train one selling-point model; see the module docstring for the strategies."""
    return Trainer(spec, run_config, run_dir, distribution, verbose, hooks).fit()


SWEEP = "lr_sweep"


def kept_epoch(history: list) -> dict | None:
    """The main-phase epoch whose weights a run kept: the last one marked ``kept`` (it beat
    the best validation logloss so far by more than ``min_improvement``); for a history written
    before the mark existed, the lowest validation logloss (what was kept then)."""
    main = [r for r in history if r.get("phase", "main") == "main"
            and isinstance(r.get("valid_logloss"), (int, float)) and not np.isnan(r["valid_logloss"])]
    marked = [r for r in main if r.get("kept")]
    if marked:
        return marked[-1]
    if any("kept" in r for r in main):
        return None
    return min(main, key=lambda r: r["valid_logloss"]) if main else None


def train_with_learning_rates(spec: DataSpec, run_config: RunConfig, run_dir, learning_rates,
                              distribution=None, verbose: int = 1, hooks=None) -> TrainResult:
    """Train one run per learning rate under ``RUN/lr_sweep/lr_<rate>`` and keep the one whose
    best validation logloss is lowest: its config, weights and history become ``RUN``'s, and
    ``RUN/lr_sweep.json`` records every rate's figures. One rate trains straight into ``RUN``."""
    import dataclasses  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    run_dir = Path(run_dir)
    rates = [float(r) for r in learning_rates]
    if len(rates) == 1:
        config = dataclasses.replace(run_config, train=dataclasses.replace(
            run_config.train, learning_rate=rates[0]))
        return train(spec, config, run_dir, distribution, verbose, hooks)
    results = {}
    for rate in rates:
        config = dataclasses.replace(run_config, train=dataclasses.replace(
            run_config.train, learning_rate=rate))
        if verbose:
            print(f"== learning rate {rate:g}")
        results[rate] = train(spec, config, run_dir / SWEEP / f"lr_{rate:g}", distribution,
                              verbose, hooks)
    chosen = min(rates, key=lambda r: (math.inf if np.isnan(results[r].best_valid_logloss)
                                       else results[r].best_valid_logloss))
    source = run_dir / SWEEP / f"lr_{chosen:g}"
    for name in ("config.json", "history.json"):
        shutil.copy2(source / name, run_dir / name)
    if (run_dir / "model").exists():
        shutil.rmtree(run_dir / "model")
    shutil.copytree(source / "model", run_dir / "model")
    (run_dir / "lr_sweep.json").write_text(json.dumps({
        "chosen": chosen, "rule": "lowest best validation logloss",
        "runs": {f"{r:g}": {"best_valid_logloss": results[r].best_valid_logloss,
                            "best_valid_auc": results[r].best_valid_auc,
                            "epochs": len(results[r].history)} for r in rates}}, indent=1))
    best = results[chosen]
    return TrainResult(run_dir, best.history, best.best_valid_auc, best.model,
                       best.best_valid_logloss)


def load_trained_model(run_dir, data_dir=None):
    """Rebuild the model of a finished run from ``RUN/config.json`` and ``RUN/model/weights``."""
    from tfrs_models.input import load_spec  # noqa: PLC0415

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UserError(f"{config_path} does not exist; is {run_dir} a training run?")
    run_config = RunConfig.from_dict(json.loads(config_path.read_text()))
    spec = load_spec(data_dir or run_config.data_dir)
    model = build_model(spec, run_config.model)
    weights = run_dir / WEIGHTS
    if not Path(str(weights) + ".index").exists():
        raise UserError(f"{run_dir} has no trained weights ({weights}); did training finish?")
    tf.train.Checkpoint(model=model).read(str(weights)).expect_partial()
    return model, spec, run_config
