"""``adpush export`` and ``adpush serve`` (docs/contracts.md §3: heavy imports inside ``func``)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    export = subparsers.add_parser(
        "export", help="export a training run as a TF-Serving SavedModel version (BASE/NAME/<version>/)",
        description="Export RUN (its export_info.json, see serving/README.md) to BASE/NAME/<version>/: "
                    "written to a temporary directory and renamed into place; never overwrites a version.")
    export.add_argument("--run-dir", required=True, help="training run directory holding export_info.json")
    export.add_argument("--model-base-path", required=True, help="BASE: the directory holding model names")
    export.add_argument("--model-name", required=True, help="NAME: the model's name (a directory under BASE)")
    export.add_argument("--version", type=int, default=None, help="integer version (default: highest + 1)")
    export.add_argument("--gate", action="append", metavar="METRIC>=X",
                        help="publish only if the run's validation METRIC clears X (>= higher is better, "
                             "<= lower is better) and is no worse than the served (highest) version's; "
                             "repeatable or comma-separated, e.g. --gate 'auc>=0.6,logloss<=0.25'. On "
                             "failure: exit 2, every failing metric named, nothing written")
    export.add_argument("--gate-tolerance", type=float, default=0.0,
                        help="how much worse than the served version still counts as no worse (default 0)")
    export.set_defaults(func=_export)

    serve = subparsers.add_parser(
        "serve", help="run the local TF-Serving-compatible model server (REST + gRPC)",
        description="A local server with TensorFlow Serving's REST and gRPC APIs. Flags are named as "
                    "tensorflow_model_server's. Stops cleanly on SIGTERM/SIGINT.")
    from serving.server_flags import add_server_flags  # light: no TensorFlow at import time

    add_server_flags(serve)
    serve.set_defaults(func=_serve)


def _export(args: argparse.Namespace) -> int:
    from adpush_core.errors import UserError
    from serving.errors import ExportError
    from serving.gate import gated_export, parse_gate

    try:
        thresholds = parse_gate(args.gate) if args.gate else None
        path, summary = gated_export(args.run_dir, args.model_base_path, args.model_name, thresholds,
                                     version=args.version, tolerance=args.gate_tolerance)
    except ExportError as err:
        raise UserError(str(err)) from err
    if thresholds:
        print(summary)
    print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from serving.server_flags import run_server

    return run_server(args)
