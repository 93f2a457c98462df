"""Command line of the cascade family (no TensorFlow at import, docs/contracts.md §3).

* ``adpush train cascade --model … --encoder … --data OUT --run-dir RUN`` via
  ``register_train`` (called by ``tfrs_models.cli``) or ``add_train_arguments`` + ``run_train``;
* ``adpush evaluate --run-dir RUN`` via ``evaluate`` (dispatched on RUN/config.json's family);
* ``adpush compare --family cascade --data OUT --seeds 3 --out DIR [--oracle LOGS]`` via
  ``register``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.config import MODELS, ModelConfig, TrainConfig
from tfrs_models.cascade.encoders.registry import ENCODERS
from tfrs_models.training.distribute import DISTRIBUTIONS


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _add_budget_arguments(p) -> None:
    p.add_argument("--data", required=True, help="build-data output directory (spec.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    p.add_argument("--patience", type=int, default=1, help="early stopping on the validation objective")
    p.add_argument("--oracle", default=None,
                   help="simulate-logs output: oracle/behaviour.csv figures on the same test rows")


def _add_model_arguments(p) -> None:
    d = ModelConfig()
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
    p.add_argument("--embedding-l2", type=float, default=d.embedding_l2,
                   help="mini-batch aware L2 on the looked-up embedding rows")
    p.add_argument("--embedding-prior", type=float, default=d.embedding_prior,
                   help="Gaussian prior on every embedding row: lambda * sum ||E||^2 / N_train "
                        "added to the mean loss each step")
    p.add_argument("--exclude-features", default="", help="comma list of spec features left out")
    p.add_argument("--no-history-matches", action="store_true",
                   help="no candidate-match channels per history event")
    p.add_argument("--no-history-summary", action="store_true",
                   help="no target-aware history counts and recencies")
    p.add_argument("--no-history-decay", action="store_true",
                   help="no time-decayed history counts (learnt half-lives)")
    p.add_argument("--field-interactions", action="store_true",
                   help="pairwise inner products of the context field embeddings as inputs")
    p.add_argument("--calibrator-weight", type=float, default=None,
                   help="α of 000 Eq. 7 (default 0.6 for cnn_attention/aitm, 0 otherwise)")
    p.add_argument("--tower-units", default=",".join(map(str, d.tower_units)))
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--conv-filters", default=",".join(map(str, d.conv_filters)))
    p.add_argument("--conv-kernel-sizes", default=",".join(map(str, d.conv_kernel_sizes)))
    p.add_argument("--conv-strides", default=",".join(map(str, d.conv_strides)))
    p.add_argument("--conv-paddings", default=",".join(map(str, d.conv_paddings)))
    p.add_argument("--encoder-units", type=int, default=d.encoder.units)
    p.add_argument("--context-length", type=int, default=d.encoder.context_length,
                   help="TCN context length cl (filter 2·cl+1)")
    p.add_argument("--personalised", action="store_true", help="PEG filters in tcn/msia/multi_time_scale")


def add_train_arguments(p) -> None:
    """Arguments of ``adpush train cascade``."""
    _add_budget_arguments(p)
    p.add_argument("--model", choices=MODELS, default="cnn_attention")
    p.add_argument("--encoder", choices=ENCODERS, default="tcn")
    p.add_argument("--run-dir", required=True,
                   help="where the SavedModel, config, metrics, checkpoints (a rerun resumes "
                        "from the last finished epoch) and TensorBoard scalars go")
    p.add_argument("--distribution", choices=DISTRIBUTIONS, default="none",
                   help="multi_worker: MultiWorkerMirroredStrategy over the TF_CONFIG cluster, "
                        "every worker runs this same command and only the chief writes RUN")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_model_arguments(p)


def register_train(kind_subparsers) -> None:
    """Add the ``cascade`` kind to ``adpush train``."""
    p = kind_subparsers.add_parser("cascade", help="train a CTR→CVR model (000) or a baseline",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def _model_config(args, name: str = "cnn_attention", encoder: str = "tcn"):
    from tfrs_models.cascade.encoders.registry import EncoderConfig

    encoder_config = EncoderConfig(name=encoder, units=args.encoder_units,
                                   context_length=args.context_length, personalised=args.personalised)
    return ModelConfig(name=name, embedding_dim=args.embedding_dim, embedding_l2=args.embedding_l2,
                       embedding_prior=args.embedding_prior,
                       exclude_features=tuple(f for f in args.exclude_features.split(",") if f),
                       history_matches=not args.no_history_matches,
                       history_summary=not args.no_history_summary,
                       history_decay=not args.no_history_decay,
                       field_interactions=args.field_interactions,
                       tower_units=_ints(args.tower_units), dropout=args.dropout,
                       calibrator_weight=args.calibrator_weight,
                       conv_filters=_ints(args.conv_filters),
                       conv_kernel_sizes=_ints(args.conv_kernel_sizes),
                       conv_strides=_ints(args.conv_strides), conv_paddings=_ints(args.conv_paddings),
                       encoder=encoder_config)


def _train_config(args):
    return TrainConfig(batch_size=args.batch_size, epochs=args.epochs,
                       learning_rate=args.learning_rate, steps_per_epoch=args.steps_per_epoch,
                       seed=args.seed)


def _configs(args):
    return _model_config(args, args.model, args.encoder), _train_config(args)


def run_train(args) -> int:
    """Train, score the test split (beside the oracle's with --oracle), write the run directory
    (RUN/export/saved_model and RUN/export_info.json included).

    Under multi_worker every worker trains and scores; only the chief writes RUN (the others
    write into a temporary directory deleted afterwards), and each prints a digest of its
    trained weights, the same on every worker.
    """
    from tfrs_models.training.distribute import is_chief, make_strategy, weights_digest, write_dir

    strategy = make_strategy(args.distribution)   # before any other TensorFlow op
    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.cascade.train import predict_split, save_run, score_test, train_model

    spec = load_dataset(args.data)
    model_config, train_config = _configs(args)
    run_dir = Path(args.run_dir)
    model, history = train_model(spec, model_config, train_config, patience=args.patience,
                                 verbose=0 if args.quiet else 1, strategy=strategy, run_dir=run_dir)
    pred = predict_split(lambda b: model(b, training=False), spec, "test", args.batch_size)
    scored = score_test(pred, args.oracle)
    chief = is_chief(strategy)
    with write_dir(run_dir, chief) as out:
        save_run(out, model, spec, model_config, train_config, history, scored)
    if args.distribution == "multi_worker":
        task = strategy.cluster_resolver
        print(f"worker {task.task_type}:{task.task_id} of {strategy.num_replicas_in_sync}: trained "
              f"weights sha256 {weights_digest(model)}", flush=True)
        if not chief:
            return 0
    from tfrs_models.export import SAVED_MODEL_DIR, prepare_run

    prepare_run(run_dir)
    print(_summary_line(f"trained {args.model}/{args.encoder}", scored)
          + f"; SavedModel in {run_dir / SAVED_MODEL_DIR}")
    return 0


def _summary_line(head: str, scored: dict) -> str:
    test = scored["test"]
    line = (f"{head}: test click AUC {test['model']['click']['auc']:.4f}, conversion AUC "
            f"{test['model']['conversion']['auc']:.4f}, CVR AUC (clicked) "
            f"{test['model']['cvr_auc_clicked']:.4f}")
    if "oracle" in test:
        line += (f"; oracle on the same {scored['oracle_rows']:,} rows: click AUC "
                 f"{test['oracle']['click']['auc']:.4f}, conversion AUC "
                 f"{test['oracle']['conversion']['auc']:.4f}")
    return line


def evaluate(args) -> int:
    """``adpush evaluate --run-dir RUN [--data OUT] [--oracle LOGS]`` for a cascade run: scores
    RUN/export/saved_model on the test split and rewrites the test figures of RUN/metrics.json."""
    import_tensorflow()
    from tfrs_models import run_dir as run_files
    from tfrs_models.cascade.config import RunConfig
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.cascade.train import load_predict_fn, predict_split, score_test
    from tfrs_models.export import SAVED_MODEL_DIR

    run = Path(args.run_dir)
    config = RunConfig.from_dict(run_files.read(run, run_files.CONFIG))
    spec = load_dataset(args.data or config.data_dir, config.dataset)
    pred = predict_split(load_predict_fn(run / SAVED_MODEL_DIR), spec, "test")
    scored = score_test(pred, getattr(args, "oracle", None))
    kept = run_files.read(run, run_files.METRICS) if (run / run_files.METRICS).is_file() else {}
    extra = {k: v for k, v in kept.items()
             if k not in ("family", "split", "rows", "test", "oracle_rows")}
    run_files.write(run, run_files.METRICS, run_files.metrics_document("cascade", **scored, **extra))
    print(_summary_line(f"{run / run_files.METRICS} written", scored))
    return 0


def register(subparsers) -> None:
    """Add ``adpush compare`` (``--family cascade``)."""
    p = subparsers.add_parser("compare", help="train every model of a family with the same budget "
                              "and seeds; Markdown + JSON table",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--family", choices=["cascade"], default="cascade")
    _add_budget_arguments(p)
    _add_model_arguments(p)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, starting at --seed")
    p.add_argument("--out", required=True, help="directory for compare.md and compare.json")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--encoders", default="tcn", help="comma list; one row per model × encoder")
    p.add_argument("--learning-rates", default="",
                   help="comma list: each model trains at every rate; the rate with the lowest "
                        "mean validation objective is reported (default: --learning-rate)")
    p.set_defaults(func=compare_command)


def compare_command(args) -> int:
    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from tfrs_models.cascade.compare import CompareConfig, run_compare

    config = CompareConfig(
        data_dir=args.data, out_dir=args.out, seeds=args.seeds, first_seed=args.seed,
        models=tuple(m for m in args.models.split(",") if m),
        encoders=tuple(e for e in args.encoders.split(",") if e), oracle_logs=args.oracle,
        model=_model_config(args), patience=args.patience, train=_train_config(args),
        learning_rates=tuple(float(r) for r in args.learning_rates.split(",") if r))
    run_compare(config)
    print(f"wrote {args.out}/compare.md and {args.out}/compare.json")
    return 0
