"""``adpush train sf`` and ``adpush evaluate`` for the selling-point family (no TF at import)."""
from __future__ import annotations

import argparse

from tfrs_models.selling_point.config import MODELS, STRATEGIES, ModelConfig, RunConfig, TrainConfig


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
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=2, help="early stopping on validation AUC")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--k", type=float, default=None,
                   help="alternating: auxiliary:main draw ratio (default rows(ad)/rows(sf))")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--hidden-units", default="64,32")
    p.add_argument("--attention-units", type=int, default=16)
    p.add_argument("--exclude-features", default="",
                   help="comma-separated spec features the model leaves out (e.g. user_id: with "
                        "~10 SF rows per user its embedding overfits; 001's user is its history)")
    p.add_argument("--dropout", type=float, default=0.0, help="MLP dropout (training only)")
    p.add_argument("--embedding-l2", type=float, default=0.0,
                   help="L2 on the embedding rows each batch looks up")
    p.add_argument("--mirrored", action="store_true", help="train under MirroredStrategy")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=train_command)


def run_config_from_args(args) -> RunConfig:
    return RunConfig(
        data_dir=str(args.data),
        model=ModelConfig(model=args.model, embedding_dim=args.embedding_dim,
                          hidden_units=tuple(int(u) for u in args.hidden_units.split(",") if u),
                          attention_units=args.attention_units,
                          exclude_features=tuple(f for f in args.exclude_features.split(",") if f),
                          dropout=args.dropout, embedding_l2=args.embedding_l2),
        train=TrainConfig(strategy=args.strategy, epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, k=args.k, patience=args.patience,
                          pretrain_epochs=args.pretrain_epochs, seed=args.seed))


def train_command(args) -> int:
    from tfrs_models._tf import import_tensorflow  # noqa: PLC0415

    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from tfrs_models.input import load_spec  # noqa: PLC0415
    from tfrs_models.training.strategies import train  # noqa: PLC0415

    run_config = run_config_from_args(args)
    distribution = tf.distribute.MirroredStrategy() if args.mirrored else None
    result = train(load_spec(args.data), run_config, args.run_dir, distribution=distribution,
                   verbose=0 if args.quiet else 1)
    from serving.families import SAVED_MODEL_DIR, prepare_run  # noqa: PLC0415

    prepare_run(result.run_dir)  # the one serving export, over raw log values (serving/families.py)
    print(f"trained {run_config.model.model}/{run_config.train.strategy}: best validation AUC "
          f"{result.best_valid_auc:.4f}; weights in {result.run_dir}/model/, SavedModel "
          f"{result.run_dir / SAVED_MODEL_DIR}")
    return 0


def evaluate(args) -> int:
    """``adpush evaluate`` for a selling-point run (dispatched by ``tfrs_models.cli``)."""
    from tfrs_models.selling_point.evaluation import evaluate_run  # noqa: PLC0415

    result = evaluate_run(args.run_dir, data_dir=args.data, oracle_dir=args.oracle)
    overall = result["overall"]
    line = " | ".join(f"{name}: AUC {m['auc']} GAUC {m['gauc']} logloss {m['logloss']}"
                      for name, m in overall.items())
    print(f"{args.run_dir}/metrics.json written — {line}")
    return 0
