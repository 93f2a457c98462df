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
    export.set_defaults(func=_export)

    serve = subparsers.add_parser(
        "serve", help="run the local TF-Serving-compatible model server (REST + gRPC)",
        description="A local server with TensorFlow Serving's REST and gRPC APIs. Flags are named as "
                    "tensorflow_model_server's. Stops cleanly on SIGTERM/SIGINT.")
    from serving.server import add_server_flags  # light: no TensorFlow at import time

    add_server_flags(serve)
    serve.set_defaults(func=_serve)


def _export(args: argparse.Namespace) -> int:
    from adpush.errors import UserError
    from serving.export import ExportError, export_run

    try:
        from pathlib import Path

        from serving.families import EXPORT_INFO, prepare_run

        run_dir = Path(args.run_dir)
        if not (run_dir / EXPORT_INFO).is_file() and (run_dir / "config.json").is_file():
            prepare_run(run_dir)  # a training run that has not written its serving SavedModel
        path = export_run(args.run_dir, args.model_base_path, args.model_name, version=args.version)
    except ExportError as err:
        raise UserError(str(err)) from err
    print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from serving.server import run_server

    return run_server(args)
