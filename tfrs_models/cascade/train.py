"""Train, predict and score one cascade model (no CLI parsing here).

``train_model`` fits on the train split with early stopping on the *validation* loss (the sum of
the two tasks' BCE and the calibrator — steadier than the conversion AUC, whose positives are few);
``predict_split`` returns numpy predictions with labels and the join keys; ``score`` turns them
into the figures of 000 Tables II–V / 002 Table 7 using ``tfrs_models.metrics``.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.config import ModelConfig, TrainConfig
from tfrs_models.cascade.data import CLICK_LABEL, CONVERSION_LABEL
from tfrs_models.input import DatasetSpec, dataset_batches, float_statistics


def layout_of(spec: DatasetSpec, exclude: tuple[str, ...] = ()) -> dict:
    """The model's input layout, with the float features' train statistics."""
    from tfrs_models.cascade.features import InputLayout

    return dataclasses.asdict(InputLayout.from_spec(spec, float_statistics(spec), exclude))


def train_model(spec: DatasetSpec, model_config: ModelConfig, train_config: TrainConfig,
                patience: int = 1, verbose: int = 0, *, strategy=None, run_dir: Path | None = None):
    """Build and fit a model; deterministic for ``train_config.seed``. Returns (model, history).

    Early stopping on the validation objective (``patience`` epochs); the model returned carries
    the best epoch's weights. ``strategy``: a ``tf.distribute.Strategy``
    (``training.distribute.make_strategy``; None: one process), under which every worker reads
    the same global batches and each replica takes its slice of each, so the steps are those of
    one process. ``run_dir``: RUN/checkpoints at every epoch end, from which a later call with
    the same run resumes (and may go on to a larger ``epochs``), and the logs as TensorBoard
    scalars in RUN/tensorboard; under multi_worker only the chief writes there.
    ``verbose``: Keras' progress bar (1) or none (0).
    """
    tf = import_tensorflow()

    from tfrs_models.cascade.models.registry import build_model
    from tfrs_models.training import callbacks as cb
    from tfrs_models.training.distribute import global_batches, is_chief, write_dir

    strategy = strategy or tf.distribute.get_strategy()
    tf.keras.utils.set_random_seed(train_config.seed)
    with strategy.scope():
        model = build_model(layout_of(spec, model_config.exclude_features), model_config)
        model.compile(optimizer=tf.keras.optimizers.Adam(train_config.learning_rate))
    train = global_batches(dataset_batches(
        spec, "train", train_config.batch_size, order="sequential_records", shuffle=True,
        seed=train_config.seed, repeat=train_config.steps_per_epoch is not None, cache=True))
    callbacks, valid, early = [], None, None
    if "valid" in spec.files and _has_files(spec, "valid"):
        valid = global_batches(dataset_batches(spec, "valid", max(train_config.batch_size, 1024),
                                               order="sequential_records", cache=True))
        early = cb.EarlyStopping("val_objective", patience)
        callbacks.append(early)
    fit = {"epochs": train_config.epochs}
    with contextlib.ExitStack() as stack:
        if run_dir is not None:
            chief = is_chief(strategy)
            identity = {"data": [str(spec.root), spec.name], "model": dataclasses.asdict(model_config),
                        "train": {k: v for k, v in dataclasses.asdict(train_config).items() if k != "epochs"},
                        "patience": patience}
            objects = {"model": model, "optimizer": model.optimizer}
            resumed = None
            if (Path(run_dir) / "checkpoints" / cb.STATE).exists():
                with strategy.scope():
                    model(next(iter(valid if valid is not None else train)))  # create the variables
                    model.optimizer.build(model.trainable_variables)
                    resumed = cb.Checkpoints.resume(Path(run_dir) / "checkpoints", objects, identity)
            directory = stack.enter_context(write_dir(Path(run_dir) / "checkpoints", chief))
            checkpoints = cb.Checkpoints(directory, objects, identity, early,
                                         history=resumed and resumed["history"])
            callbacks.append(checkpoints)
            if chief:
                callbacks.append(cb.ScalarLogger(Path(run_dir) / "tensorboard"))
            if resumed is not None and early is not None:
                early.resumed = resumed["early_stopping"]
            fit = cb.fit_epochs(resumed, train_config.epochs)
        history = model.fit(train, steps_per_epoch=train_config.steps_per_epoch,
                            validation_data=valid, callbacks=callbacks, verbose=verbose, **fit)
    if run_dir is not None:
        return model, checkpoints.history
    return model, {k: [float(x) for x in v] for k, v in history.history.items()}


def predict_split(predict_fn, spec: DatasetSpec, split: str, batch_size: int = 1024) -> dict:
    """Run ``predict_fn(features) -> {name: [B] or [B, 1]}`` over a split.

    Returns numpy arrays: every output, the labels ``click``/``conversion`` and the keys.
    """
    collected: dict[str, list] = {}
    keep = set(spec.labels) | set(spec.key)
    for batch in dataset_batches(spec, split, batch_size, order="sequential_records", cache=True):
        outputs = predict_fn(batch)
        for name, value in outputs.items():
            collected.setdefault(name, []).append(np.reshape(value.numpy(), [-1]))
        for name in keep:
            collected.setdefault(name, []).append(np.reshape(batch[name].numpy(), [-1]))
    return {k: np.concatenate(v) for k, v in collected.items()}


def score(pred: dict, user_key: str = "user_id") -> dict:
    """Metrics per task on all impressions, and CVR AUC on clicked impressions only.

    Args:
      pred: arrays ``p_click``, ``p_conversion`` (optionally ``p_cvr``), ``click``, ``conversion``
        and ``user_key`` for GAUC.
    Returns: ``{"click": {auc, gauc, logloss, accuracy, recall, specificity}, "conversion": {...},
      "cvr_auc_clicked": float}``.
    """
    from tfrs_models import metrics

    users = pred.get(user_key)
    out = {}
    for task, label, prob in (("click", CLICK_LABEL, "p_click"), ("conversion", CONVERSION_LABEL, "p_conversion")):
        y, p = pred[label], pred[prob]
        out[task] = {"auc": metrics.auc(y, p),
                     "gauc": metrics.gauc(y, p, users) if users is not None else float("nan"),
                     "logloss": metrics.logloss(y, p), **metrics.threshold_metrics(y, p)}
    clicked = pred[CLICK_LABEL] == 1
    cvr_score = pred.get("p_cvr", pred["p_conversion"])
    out["cvr_auc_clicked"] = metrics.auc(pred[CONVERSION_LABEL][clicked], cvr_score[clicked])
    return out


def score_test(pred: dict, oracle_logs=None) -> dict:
    """The test part of metrics.json (tfrs_models.run_dir): ``rows`` and ``test`` with the model's
    figures on every test row (``score``) and, given ``oracle_logs`` (a simulate-logs output), the
    oracle's and the restricted ceilings' (``ceiling_item``, ``ceiling_context``) with the model's
    again (``model_on_oracle_rows``) on the ``oracle_rows`` test rows that join the world's
    oracle file (all of them on world data)."""
    part = {"rows": int(len(pred[CLICK_LABEL])), "test": {"model": score(pred)}}
    if oracle_logs:
        from tfrs_models.cascade.oracle import oracle_scores

        joined = oracle_scores(oracle_logs, pred)
        part["oracle_rows"] = joined["joined_rows"]
        part["test"]["model_on_oracle_rows"] = joined["model"]
        part["test"].update({k: v for k, v in joined.items()
                             if k == "oracle" or k.startswith("ceiling_")})
    return part


def save_run(run_dir: Path, model, spec: DatasetSpec, model_config: ModelConfig,
             train_config: TrainConfig, history: dict, scored: dict) -> None:
    """The run directory (tfrs_models.run_dir, docs/contracts.md §6): RUN/config.json, RUN/
    history.json (Keras' per-epoch figures), RUN/export/saved_model (the run's one SavedModel) and
    RUN/metrics.json: ``scored`` (``score_test``) and ``decay_half_lives_hours``, the learnt
    half-life of each time-decayed history channel."""
    from tfrs_models import run_dir as run_files
    from tfrs_models.cascade.config import RunConfig
    from tfrs_models.cascade.export import export_saved_model
    from tfrs_models.export import SAVED_MODEL_DIR

    run_dir.mkdir(parents=True, exist_ok=True)
    export_saved_model(model, run_dir / SAVED_MODEL_DIR)
    config = RunConfig(data_dir=spec.root, dataset=spec.name, model=model_config, train=train_config)
    run_files.write(run_dir, run_files.CONFIG, config.to_dict())
    run_files.write(run_dir, run_files.HISTORY, run_files.epoch_records(history))
    extra = {}
    half_lives = model.embeddings.half_lives_hours()
    if half_lives.size:  # the decayed history channels' learnt half-lives (features.py order)
        extra["decay_half_lives_hours"] = [float(h) for h in half_lives]
    run_files.write(run_dir, run_files.METRICS,
                    run_files.metrics_document("cascade", **scored, **extra))


def load_predict_fn(saved_model_dir: Path):
    """The serving signature of an exported run as ``features -> outputs``."""
    tf = import_tensorflow()

    serve = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    names = set(serve.structured_input_signature[1])
    return lambda batch: serve(**{k: v for k, v in batch.items() if k in names})


def _has_files(spec, split: str) -> bool:
    from adpush_core.errors import UserError

    try:
        return bool(spec.split_files(split))
    except UserError:
        return False
