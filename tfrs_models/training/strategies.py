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
epoch; TensorBoard logs go to ``RUN/tensorboard/<phase>``; a Keras progress bar shows each epoch.

Every phase is one Keras ``fit`` of the model (``SellingPointModel.train_step``: the summed
task losses over the global batch size plus the prior). The strategy is a property of the
input: ``joint`` zips the two sources, ``alternating`` draws one source per step with
``tf.data.Dataset.choose_from_datasets`` (the other source's batch empty, so ``SourceAdam``
leaves its private parameters alone), ``pretrain_finetune`` is two ``fit`` calls, the second
with a fresh Adam. The validation, early stopping, checkpoint and TensorBoard work is done by
the callbacks of ``tfrs_models/training/callbacks.py``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow
from tfrs_models import metrics
from tfrs_models.input import DataSpec, InMemorySplit, make_dataset
from tfrs_models.selling_point.config import RunConfig
from tfrs_models.selling_point.models import AD, SF, build_model
from tfrs_models.selling_point.predict import predict_split
from tfrs_models.training.callbacks import (Checkpoints, EarlyStopping, EpochEnd, ScalarLogger,
                                            Validation, fit_epochs)
from tfrs_models.training.distribute import global_batches
from tfrs_models.training.source_adam import SourceAdam, WeightAverage

tf = import_tensorflow()

PHASE_PRETRAIN, PHASE_MAIN = 0, 1
PHASES = {PHASE_PRETRAIN: "pretrain", PHASE_MAIN: "main"}
WEIGHTS = "model/weights"  # RUN/model/weights: the best weights, read by evaluate


def default_k(spec: DataSpec) -> float:
    """Algorithm 1's auxiliary:main draw ratio: rows(ad_click train) / rows(sf train)."""
    sf = spec.dataset(SF).row_counts.get("train", 0)
    ad = spec.dataset(AD).row_counts.get("train", 0)
    return float(ad) / sf if sf and ad else 1.0


def alternating_draws(seed: int, epoch: int, steps: int, k: float) -> np.ndarray:
    """Algorithm 1's sources of one epoch's ``steps``: 0 = main (SF) with probability
    1 / (1 + k), 1 = auxiliary (ad clicks); the same ``(seed, epoch)`` gives the same draws."""
    draws = np.random.default_rng([seed, epoch]).random(steps)
    return (draws >= 1.0 / (1.0 + k)).astype(np.int64)


@dataclass
class TrainResult:
    """What ``train`` leaves behind (everything is also on disk in ``run_dir``)."""

    run_dir: Path
    history: list = field(default_factory=list)
    best_valid_auc: float = float("nan")   # at the best-logloss epoch
    model: object = None
    best_valid_logloss: float = float("nan")


def loss_reach(model, tasks, distribution=None) -> list:
    """``[(variable, tasks whose loss has a gradient for it)]`` — what each source's steps
    update (the loss includes the prior over the tables that source reads)."""
    distribution = distribution or tf.distribute.get_strategy()

    def has_gradient(task):  # in a replica context: distributed variables need one
        batch = dict(model.dummy_features(task), clicked=tf.zeros([1], tf.int64))
        with tf.GradientTape() as tape:
            loss = model.task_loss(task, batch, training=False) + model.prior_loss([task])
        return [tf.constant(g is not None)
                for g in tape.gradient(loss, model.trainable_variables)]

    reached = {task: distribution.experimental_local_results(
        distribution.run(has_gradient, args=(task,)))[0] for task in tasks}
    return [(v, {t for t in tasks if bool(reached[t][i])})
            for i, v in enumerate(model.trainable_variables)]


def _empty_like(element_spec) -> dict:
    """A batch of 0 rows with ``element_spec``'s features: the source a step did not draw."""
    def empty(spec):
        shape = [0] + [d if d is not None else 1 for d in spec.shape[1:]]
        return tf.fill(shape, tf.constant("" if spec.dtype == tf.string else 0, spec.dtype))

    return {name: empty(spec) for name, spec in element_spec.items()}


class _Run:
    """One selling-point training run: the model, its optimizers and the state a checkpoint
    carries (``RUN/checkpoints``), and one ``fit`` per phase."""

    def __init__(self, spec: DataSpec, run_config: RunConfig, run_dir, distribution=None,
                 verbose: int = 1, hooks=None, write_to=None):
        self.spec, self.run_config, self.cfg = spec, run_config, run_config.train
        self.run_dir = Path(run_dir)  # the run, resumed from its checkpoints
        # where this process writes (``run_dir``, or a scratch directory on a multi_worker
        # worker that is not the chief: distribute.write_dir)
        self.out_dir = Path(write_to) if write_to is not None else self.run_dir
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
        tasks = (SF, AD) if run_config.model.multi_task else (SF,)
        with self.distribution.scope():
            self.model = build_model(spec, run_config.model)
            variables = self.model.trainable_variables
            self.average = (WeightAverage(variables, self.cfg.weight_average)
                            if self.cfg.weight_average > 0 else None)
            reach = loss_reach(self.model, tasks, self.distribution)
            # The fine-tune phase starts a fresh Adam; both hold slots for every variable.
            self.optimizers = {name: SourceAdam(self.cfg.learning_rate, reach, tasks,
                                                self.average)
                               for name in ("main", "finetune")}
            for optimizer in self.optimizers.values():
                optimizer.build(variables)
        # what a checkpoint carries, and what a resumed run must train as well
        self.objects = {"model": self.model, "optimizer": self.optimizers["main"],
                        "finetune": self.optimizers["finetune"],
                        "average": self.average or tf.Module()}
        config = run_config.to_dict()
        self.identity = dict(config, train={k: v for k, v in config["train"].items()
                                            if k not in ("epochs", "pretrain_epochs")})
        self._in_memory: dict = {}  # task -> InMemorySplit of its train split (cache_input)
        self.history: list = []

    # -- input ----------------------------------------------------------------------------------
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

    def steps_per_epoch(self, phase: int) -> int:
        if phase == PHASE_PRETRAIN:
            return self._batches_per_epoch(AD)
        if self.cfg.strategy == "alternating":
            return max(1, round(self._batches_per_epoch(SF) * (1 + self.k)))
        return self._batches_per_epoch(SF)

    def phase_tasks(self, phase: int) -> tuple:
        """The sources a phase's steps read."""
        if phase == PHASE_PRETRAIN:
            return (AD,)
        if self.cfg.strategy == "pretrain_finetune" or not self.run_config.model.multi_task:
            return (SF,)
        return (SF, AD)

    def _source(self, task: str, epoch: int):
        """``task``'s shuffled train batches of ``epoch``, without end (seeded by the epoch)."""
        names = set(self.model.input_signature(task)) | {"clicked"}
        seed = self.cfg.seed * 7919 + epoch * 2 + (0 if task == SF else 1)
        if self.cfg.cache_input:
            if task not in self._in_memory:
                self._in_memory[task] = InMemorySplit(self.spec, task, "train", names)
            return self._in_memory[task].dataset(self.batch_size(task), seed)
        return make_dataset(self.spec, task, "train", self.batch_size(task), shuffle=True,
                            seed=seed, repeat=True, drop_remainder=True, names=names)

    def phase_dataset(self, phase: int, first: int, end: int):
        """The steps of epochs ``first`` … ``end - 1``, each ``{task: batch}``: one source (a
        phase on one task), both zipped (``joint``), or one drawn per step by Algorithm 1
        (``alternating``, one ``choose_from_datasets`` over every epoch's draws) with the other
        source's batch empty. Each task's stream is its per-epoch sources, one after the other,
        each cut to the batches that epoch takes from it."""
        steps = self.steps_per_epoch(phase)
        tasks = self.phase_tasks(phase)
        epochs = range(first, end)
        if phase == PHASE_MAIN and self.cfg.strategy == "alternating":
            draws = {e: alternating_draws(self.cfg.seed, e, steps, self.k) for e in epochs}
            taken = {e: {SF: int(np.sum(d == 0)), AD: int(np.sum(d == 1))}
                     for e, d in draws.items()}
        else:
            taken = {e: {t: steps for t in tasks} for e in epochs}
        streams = {}
        for task in tasks:
            stream = None
            for epoch in epochs:
                part = self._source(task, epoch).take(taken[epoch][task])
                stream = part if stream is None else stream.concatenate(part)
            streams[task] = stream
        if phase == PHASE_MAIN and self.cfg.strategy == "alternating":
            empty = {t: _empty_like(ds.element_spec) for t, ds in streams.items()}
            drawn = [streams[SF].map(lambda b: {SF: b, AD: empty[AD]}),
                     streams[AD].map(lambda b: {SF: empty[SF], AD: b})]
            choice = tf.data.Dataset.from_tensor_slices(
                np.concatenate([draws[e] for e in epochs]))
            return tf.data.Dataset.choose_from_datasets(drawn, choice)
        return tf.data.Dataset.zip(streams)

    # -- epochs and phases ----------------------------------------------------------------------
    def validate(self, task: str) -> dict:
        pred = predict_split(self.model, self.spec, task, "valid", batch_size=1024)
        return {"valid_auc": metrics.auc(pred["clicked"], pred["prob"]),
                "valid_logloss": metrics.logloss(pred["clicked"], pred["prob"])}

    def _record(self, phase: int, early: EarlyStopping, history: list, epoch: int,
                logs: dict) -> None:
        """The history record of the epoch (``kept``: its weights are the phase's best so far),
        also in ``RUN/history.json``."""
        means = {t: self.model.task_loss_means[t] for t in self.phase_tasks(phase)}
        steps = {t: int(round(float(m.count.numpy()))) for t, m in sorted(means.items())}
        history.append({
            "phase": PHASES[phase], "epoch": epoch,
            **{f"train_loss_{t}": float(m.result()) for t, m in sorted(means.items())
               if steps[t]},
            "steps": steps, "valid_auc": logs["valid_auc"],
            "valid_logloss": logs["valid_logloss"], "kept": early.improved})
        (self.out_dir / "history.json").write_text(json.dumps(history, indent=1))

    def _run_phase(self, phase: int, max_epochs: int, valid_task: str, resumed: dict | None):
        """One ``fit`` of the phase, on from ``resumed`` (a checkpoint state of this phase, or
        None); the model ends on the phase's best (lowest validation logloss) weights."""
        name = PHASES[phase]
        optimizer = self.optimizers["finetune" if (
            phase == PHASE_MAIN and self.cfg.strategy == "pretrain_finetune") else "main"]
        if (phase == PHASE_MAIN and resumed is None
                and self.cfg.strategy == "pretrain_finetune" and "finetune_start" in self.hooks):
            self.hooks["finetune_start"](self.model)
        early = EarlyStopping("valid_logloss", self.cfg.patience, self.cfg.min_improvement)
        if resumed is not None:
            early.resumed = resumed["early_stopping"]
        epochs = fit_epochs(resumed, max_epochs)
        start = epochs.get("initial_epoch", 0)
        average = self.average
        callbacks = [
            # validation, the kept weights and the export see the weight average
            EpochEnd(lambda e, logs: average and average.swap_in()),
            Validation(lambda: self.validate(valid_task), f"valid {valid_task}", self.verbose),
            early,
            EpochEnd(lambda e, logs: average and average.swap_out()),
            Checkpoints(self.out_dir / "checkpoints", self.objects, self.identity, early,
                        self.history, lambda *args: self._record(phase, early, *args), name),
            ScalarLogger(self.out_dir / "tensorboard" / name),  # RUN/tensorboard/<phase>
        ]
        with self.distribution.scope():
            self.model.compile(optimizer=optimizer)
        if self.verbose and start < epochs["epochs"]:
            print(f"[{name}] epochs {start + 1}-{epochs['epochs']}")
        # every worker reads the same batches, each replica takes its slice of each (a
        # finished phase reads none: its fit only ends on the best weights)
        steps = global_batches(self.phase_dataset(phase, start, max(epochs["epochs"], start + 1)))
        self.model.fit(steps, steps_per_epoch=self.steps_per_epoch(phase), callbacks=callbacks,
                       verbose=self.verbose, **epochs)

    def _restore(self) -> dict | None:
        """The checkpoint state to resume from (``RUN/checkpoints``), its weights and
        optimizers restored, or None."""
        resumed = Checkpoints.resume(self.run_dir / "checkpoints", self.objects, self.identity)
        if resumed is not None:
            if self.verbose:
                print(f"resuming {self.run_dir} after {resumed['phase']} epoch "
                      f"{resumed['epochs_done']}")
            self.history = resumed["history"]
        return resumed

    def fit(self) -> TrainResult:
        """Train (resuming from ``RUN/checkpoints`` if present) and write ``RUN/model/weights``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(json.dumps(self.run_config.to_dict(), indent=1))
        resumed = self._restore()
        if self.cfg.strategy == "pretrain_finetune" and (
                resumed is None or resumed["phase"] == PHASES[PHASE_PRETRAIN]):
            self._run_phase(PHASE_PRETRAIN, self.cfg.pretrain_epochs, AD, resumed)
            if "pretrain_end" in self.hooks:
                self.hooks["pretrain_end"](self.model)
            resumed = None
        self._run_phase(PHASE_MAIN, self.cfg.epochs, SF, resumed)
        tf.train.Checkpoint(model=self.model).write(str(self.out_dir / WEIGHTS))
        best = kept_epoch(self.history)
        return TrainResult(self.run_dir, self.history,
                           best["valid_auc"] if best else float("nan"), self.model,
                           best["valid_logloss"] if best else float("nan"))


def train(spec: DataSpec, run_config: RunConfig, run_dir, distribution=None, verbose: int = 1,
          hooks=None, write_to=None) -> TrainResult:
    """Train one selling-point model; see the module docstring for the strategies.

    Args:
        distribution: a ``tf.distribute.Strategy`` (``distribute.make_strategy``); None = none.
        hooks: ``{"pretrain_end" | "finetune_start": callable(model)}`` (for tests/analysis).
        write_to: where this process writes the run (default ``run_dir``; a multi_worker
            worker that is not the chief writes a scratch directory, ``distribute.write_dir``).
    """
    return _Run(spec, run_config, run_dir, distribution, verbose, hooks, write_to).fit()


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
                              distribution=None, verbose: int = 1, hooks=None,
                              write_to=None) -> TrainResult:
    """Train one run per learning rate under ``RUN/lr_sweep/lr_<rate>`` and keep the one whose
    best validation logloss is lowest: its config, weights and history become ``RUN``'s, and
    ``RUN/lr_sweep.json`` records every rate's figures. One rate trains straight into ``RUN``."""
    import dataclasses  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    run_dir = Path(run_dir)
    out_dir = Path(write_to) if write_to is not None else run_dir
    rates = [float(r) for r in learning_rates]
    if len(rates) == 1:
        config = dataclasses.replace(run_config, train=dataclasses.replace(
            run_config.train, learning_rate=rates[0]))
        return train(spec, config, run_dir, distribution, verbose, hooks, write_to)
    results = {}
    for rate in rates:
        config = dataclasses.replace(run_config, train=dataclasses.replace(
            run_config.train, learning_rate=rate))
        if verbose:
            print(f"== learning rate {rate:g}")
        results[rate] = train(spec, config, run_dir / SWEEP / f"lr_{rate:g}", distribution,
                              verbose, hooks, out_dir / SWEEP / f"lr_{rate:g}")
    chosen = min(rates, key=lambda r: (math.inf if np.isnan(results[r].best_valid_logloss)
                                       else results[r].best_valid_logloss))
    source = out_dir / SWEEP / f"lr_{chosen:g}"
    for name in ("config.json", "history.json"):
        shutil.copy2(source / name, out_dir / name)
    if (out_dir / "model").exists():
        shutil.rmtree(out_dir / "model")
    shutil.copytree(source / "model", out_dir / "model")
    (out_dir / "lr_sweep.json").write_text(json.dumps({
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
