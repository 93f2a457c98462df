"""``adpush train sf`` and ``adpush evaluate`` for the selling-point family (no TF at import)."""
from __future__ import annotations

import argparse

from adpush_core.tfenv import import_tensorflow
from tfrs_models.selling_point.config import (HISTORY_POOLING, INTERACTIONS, JOINT_BATCHES, MODELS,
                                              STRATEGIES, TITLE_POOLING, ModelConfig, RunConfig, TrainConfig)
from tfrs_models.training.distribute import DISTRIBUTIONS

# The flags' defaults are the dataclasses' (one place to change a default).
_MODEL, _TRAIN = ModelConfig(), TrainConfig()


def register_train(kind_subparsers) -> None:
    """Add the ``sf`` kind to ``adpush train``."""
    p = kind_subparsers.add_parser(
        "sf", help="train BM / MTDL / AMTDL (001) on the SF + ad-click data",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=MODELS, default="mtdl")
    p.add_argument("--strategy", choices=STRATEGIES, default="joint")
    p.add_argument("--data", required=True, help="build-data output directory (spec.json)")
    p.add_argument("--run-dir", required=True, help="checkpoints, logs and the trained model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=_TRAIN.epochs, help="cap of the main phase's epochs")
    p.add_argument("--pretrain-epochs", type=int, default=_TRAIN.pretrain_epochs, help="cap of the pretrain phase")
    p.add_argument("--patience", type=int, default=_TRAIN.patience,
                   help="early stopping: epochs without a better validation logloss")
    p.add_argument("--min-improvement", type=float, default=_TRAIN.min_improvement,
                   help="how much lower a validation logloss must be than the best so far to "
                        "count as better (reset the patience, be kept)")
    p.add_argument("--batch-size", type=int, default=_TRAIN.batch_size)
    p.add_argument("--learning-rate", default=f"{_TRAIN.learning_rate:g}",
                   help="one rate, or comma-separated rates: one run each, the best validation "
                        "logloss is kept (RUN/lr_sweep.json)")
    p.add_argument("--joint-batches", choices=JOINT_BATCHES, default=_TRAIN.joint_batches,
                   help="joint: one batch of each source per step (equal), or an ad batch k times "
                        "larger so an epoch passes over both train splits and every row weighs "
                        "the same (proportional)")
    p.add_argument("--weight-average", type=float, default=_TRAIN.weight_average,
                   help="decay of an exponential moving average of the weights used for "
                        "validation, early stopping and export (0 = the last iterate)")
    p.add_argument("--cache-input", action="store_true",
                   help="hold the train splits in memory, parsed once; each epoch is a fresh "
                        "permutation of the rows (for splits that fit in memory)")
    p.add_argument("--k", type=float, default=None,
                   help="alternating: auxiliary:main draw ratio (default rows(ad)/rows(sf))")
    p.add_argument("--embedding-dim", type=int, default=_MODEL.embedding_dim)
    p.add_argument("--hidden-units", default="",
                   help="comma-separated MLP widths over the concatenated vectors (default none: "
                        "the candidate x group dots, item bias and linear terms only)")
    p.add_argument("--attention-units", type=int, default=_MODEL.attention_units)
    p.add_argument("--interactions", choices=INTERACTIONS, default=_MODEL.interactions,
                   help="candidate x user/query/profile crosses: FM-style dot products into the "
                        "output layer, a DCN-v2 cross layer (tfrs.layers.dcn.Cross), or none")
    p.add_argument("--cross-layers", type=int, default=_MODEL.cross_layers, help="DCN-v2 cross layers")
    p.add_argument("--use-user-id", action="store_true",
                   help="also embed user_id (off by default: at ~10 SF rows per user it overfits; "
                        "001's user is its click history)")
    p.add_argument("--no-ad-context", action="store_true",
                   help="the ad head reads only the pooled title, not ad id / category / position")
    p.add_argument("--exclude-features", default="",
                   help="comma-separated spec features the model leaves out (ablations)")
    p.add_argument("--dropout", type=float, default=_MODEL.dropout, help="MLP dropout (training only)")
    p.add_argument("--embedding-l2", type=float, default=_MODEL.embedding_l2,
                   help="L2 on the embedding rows each batch looks up (per occurrence)")
    p.add_argument("--embedding-prior", type=float, default=_MODEL.embedding_prior,
                   help="Gaussian prior on every embedding row: lambda * sum ||E||^2 / N_train "
                        "added to the mean loss each step")
    p.add_argument("--history-pooling", choices=HISTORY_POOLING, default=_MODEL.history_pooling,
                   help="pool each history feature on its own (default) or the whole group as "
                        "one mean (001)")
    p.add_argument("--title-pooling", choices=TITLE_POOLING, default=_MODEL.title_pooling,
                   help="the ad head's title: 001's MLP attention (Eq. 11-13), or each token "
                        "scored by the SF head's keyword score (ad clicks train the SF ranking)")
    p.add_argument("--no-item-bias", action="store_true",
                   help="no per-keyword scalar bias in the SF and ad logits")
    p.add_argument("--embedding-init-std", type=float, default=_MODEL.embedding_init_std,
                   help="std of the N(0, s^2) initial embedding rows (0 = Keras' uniform)")
    p.add_argument("--distribution", choices=DISTRIBUTIONS, default="none",
                   help="mirrored: every local device; multi_worker: MultiWorkerMirroredStrategy "
                        "over the TF_CONFIG cluster, every worker runs this same command and only "
                        "the chief writes RUN")
    p.add_argument("--mirrored", action="store_true",
                   help="deprecated: --distribution mirrored")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=train_command)


def run_config_from_args(args) -> RunConfig:
    return RunConfig(
        data_dir=str(args.data),
        model=ModelConfig(name=args.model, embedding_dim=args.embedding_dim,
                          hidden_units=tuple(int(u) for u in args.hidden_units.split(",") if u),
                          attention_units=args.attention_units,
                          exclude_features=tuple(f for f in args.exclude_features.split(",") if f),
                          dropout=args.dropout, embedding_l2=args.embedding_l2,
                          embedding_prior=args.embedding_prior,
                          embedding_init_std=args.embedding_init_std,
                          interactions=args.interactions, cross_layers=args.cross_layers,
                          use_user_id=args.use_user_id, ad_context=not args.no_ad_context,
                          history_pooling=args.history_pooling,
                          title_pooling=args.title_pooling,
                          item_bias=not args.no_item_bias),
        train=TrainConfig(strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=learning_rates(args.learning_rate)[0], k=args.k,
                          patience=args.patience, min_improvement=args.min_improvement,
                          pretrain_epochs=args.pretrain_epochs,
                          joint_batches=args.joint_batches,
                          weight_average=args.weight_average,
                          cache_input=args.cache_input, seed=args.seed))


def learning_rates(text: str) -> list[float]:
    from adpush_core.errors import UserError  # noqa: PLC0415

    try:
        rates = [float(r) for r in str(text).split(",") if r.strip()]
    except ValueError:
        raise UserError(f"--learning-rate {text!r}: expected numbers like 1e-3,3e-3") from None
    if not rates or any(r <= 0 for r in rates):
        raise UserError(f"--learning-rate {text!r}: every rate must be > 0")
    return rates


def train_command(args) -> int:
    """Train (resuming RUN), then the serving export. Under multi_worker every worker trains;
    only the chief writes RUN (the others a scratch directory deleted afterwards)."""
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from adpush_core.errors import UserError  # noqa: PLC0415
    from tfrs_models.training.distribute import (is_chief, make_strategy,  # noqa: PLC0415
                                                 weights_digest, write_dir)

    try:  # before TensorFlow loads: a bad flag fails at once
        run_config = run_config_from_args(args)
    except ValueError as error:  # a config's own check, e.g. "weight_average must be in [0, 1)"
        field = str(error).split()[0]
        flag = f"--{field.replace('_', '-')}" if hasattr(args, field) else "adpush train sf"
        raise UserError(f"{flag}: {error}") from None
    distribution = args.distribution
    if args.mirrored:
        print("adpush train sf: --mirrored is deprecated, use --distribution mirrored",
              file=sys.stderr)
        if distribution not in ("none", "mirrored"):
            raise UserError(f"--mirrored contradicts --distribution {distribution}")
        distribution = "mirrored"
    strategy = make_strategy(distribution)  # before any other TensorFlow op
    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from tfrs_models.input import load_spec  # noqa: PLC0415
    from tfrs_models.training.strategies import train_with_learning_rates  # noqa: PLC0415

    chief = is_chief(strategy)
    with write_dir(Path(args.run_dir), chief) as out:
        result = train_with_learning_rates(load_spec(args.data), run_config, args.run_dir,
                                           learning_rates(args.learning_rate),
                                           distribution=strategy,
                                           verbose=0 if args.quiet else 1, write_to=out)
    if distribution == "multi_worker":
        task = strategy.cluster_resolver
        print(f"worker {task.task_type}:{task.task_id} of {strategy.num_replicas_in_sync}: trained "
              f"weights sha256 {weights_digest(result.model)}", flush=True)
    if not chief:
        return 0
    from tfrs_models.export import SAVED_MODEL_DIR, prepare_run  # noqa: PLC0415

    prepare_run(result.run_dir)  # the run's one SavedModel, over raw log values (selling_point/export.py)
    print(f"trained {run_config.model.name}/{run_config.train.strategy}: best validation "
          f"logloss {result.best_valid_logloss:.4f} (AUC {result.best_valid_auc:.4f}); weights in {result.run_dir}/model/, SavedModel "
          f"{result.run_dir / SAVED_MODEL_DIR}")
    return 0


def evaluate(args) -> int:
    """``adpush evaluate`` for a selling-point run (dispatched by ``tfrs_models.cli``)."""
    from tfrs_models.selling_point.evaluation import evaluate_run  # noqa: PLC0415

    result = evaluate_run(args.run_dir, data_dir=args.data, oracle_dir=args.oracle)
    line = " | ".join(f"{name}: AUC {m['auc']} GAUC {m['gauc']} logloss {m['logloss']}"
                      for name, m in result["test"].items())
    print(f"{args.run_dir}/metrics.json written — {line}")
    return 0
