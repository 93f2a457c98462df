"""``adpush train <kind>`` and ``adpush evaluate``: dispatch to the model families.

A family module may also expose ``register(subparsers)`` for its own top-level commands
(cascade adds ``compare``). ``train`` takes a kind (``sf`` → ``tfrs_models.selling_point.cli``, ``cascade`` →
``tfrs_models.cascade.cli``); each family module exposes ``register_train(kind_subparsers)``
and ``evaluate(args)``. ``evaluate`` reads ``RUN/config.json``'s ``family`` (tfrs_models.run_dir)
and calls that family's ``evaluate``. No TensorFlow is imported here (docs/contracts.md §3).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from adpush_core.errors import UserError
from tfrs_models import run_dir

FAMILIES = {"selling_point": "tfrs_models.selling_point.cli",
            "cascade": "tfrs_models.cascade.cli"}


def _family_module(family: str):
    return importlib.import_module(FAMILIES[family])


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a model (kinds: sf, cascade)")
    kinds = train.add_subparsers(dest="kind", metavar="KIND")
    for family in FAMILIES:
        _family_module(family).register_train(kinds)
    train.set_defaults(func=lambda args: (train.print_help(), 2)[1])
    # Family-specific top-level commands (e.g. cascade's ``compare``).
    for family in FAMILIES:
        module = _family_module(family)
        if hasattr(module, "register"):
            module.register(subparsers)

    evaluate = subparsers.add_parser("evaluate", help="evaluate a training run")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--data", default=None,
                          help="build-data output (default: the one the run trained on)")
    evaluate.add_argument("--oracle", default=None,
                          help="simulate-logs output with oracle/ (world data only)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--baseline-only", action="store_true",
                          help="only fit the selling-point LR baseline on --data and keep it in "
                               "RUN/baseline/ for the run's evaluation (needs no trained model; "
                               "adpush run starts it beside the training)")
    evaluate.set_defaults(func=evaluate_command)


def evaluate_command(args) -> int:
    if args.baseline_only:
        if args.data is None:
            raise UserError("--baseline-only needs --data (the build-data output to fit on)")
        from tfrs_models.input import load_spec  # noqa: PLC0415
        from tfrs_models.selling_point.evaluation import (  # noqa: PLC0415
            BASELINE_DIR, fit_baseline, kept_baseline)

        spec = load_spec(args.data)
        where = Path(args.run_dir) / BASELINE_DIR
        if kept_baseline(Path(args.run_dir), spec) is not None:
            print(f"baseline already kept in {where} for {args.data}")
            return 0
        record = fit_baseline(args.run_dir, spec)
        print(f"baseline kept in {where}: C {record['summary']['chosen_C']:g} on validation")
        return 0
    return int(_family_module(run_dir.family(args.run_dir)).evaluate(args) or 0)
