"""``python -m serving.server`` / ``adpush serve``: ``tensorflow_model_server``'s flags (the subset
the local server implements) → a ``ModelServer`` that serves until SIGTERM/SIGINT."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from serving.idle_poll import DEFAULT_MAX_US
from serving.server import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_REQUEST_BYTES, ModelServer

log = logging.getLogger(__name__)


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """``tensorflow_model_server``'s flags (the subset the local server implements)."""
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    parser.add_argument("--rest_api_port", type=int, default=8501,
                        help="REST port (default 8501, as the tensorflow/serving image; 0 disables REST)")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", default=None)
    parser.add_argument("--model_config_file", default=None,
                        help="text-proto ModelServerConfig (several models, version policies, labels)")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                        help="seconds between scans of the base paths (0: scan once)")
    parser.add_argument("--enable_model_warmup", type=_bool, default=True)
    parser.add_argument("--max_num_load_retries", type=int, default=5)
    parser.add_argument("--load_retry_interval_micros", type=int, default=60_000_000)
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                        help="REST deadline (504 after it); applies with --rest_inference_threads > 0")
    parser.add_argument("--rest_api_enable_cors_support", type=_bool, default=False)
    parser.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False,
                        help="merge concurrent Predict requests into one signature call (serving/batching.py)")
    parser.add_argument("--batching_parameters_file", default=None,
                        help="text-proto BatchingParameters (max_batch_size, batch_timeout_micros, "
                             "max_enqueued_batches, num_batch_threads, allowed_batch_sizes); "
                             "defaults without it")
    parser.add_argument("--monitoring_config_file", default=None,
                        help="ascii MonitoringConfig, e.g. 'prometheus_config { enable: true path: "
                             "\"/monitoring/prometheus/metrics\" }': serve Prometheus metrics on the REST port")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                        help="TF intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                        help="TF inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (not a TF Serving flag); default loopback only, "
                             "0.0.0.0 to listen on every interface")
    parser.add_argument("--max_request_bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="largest accepted request body / gRPC message (not a TF Serving flag)")
    parser.add_argument("--max_decoded_bytes", type=int, default=DEFAULT_MAX_DECODED_BYTES,
                        help="largest decoded request (REST: ~64 bytes per JSON value; gRPC: the tensors' "
                             "elements); over it REST answers 413, gRPC RESOURCE_EXHAUSTED (not a TF Serving flag)")
    parser.add_argument("--rest_inference_threads", type=int, default=0,
                        help="0: run small requests on the REST event loop (fastest for small models) and "
                             "large ones in the --rest_large_request_threads pool; N: every request in a "
                             "pool of N threads")
    parser.add_argument("--rest_large_request_bytes", type=int, default=256 << 10,
                        help="REST bodies larger than this are decoded and run off the event loop")
    parser.add_argument("--rest_large_request_threads", type=int, default=1,
                        help="threads for large REST requests")
    parser.add_argument("--rest_max_pending_large", type=int, default=4,
                        help="large REST requests queued or running at once; 429 beyond")
    parser.add_argument("--grpc_max_workers", type=int, default=16,
                        help="threads for the gRPC requests that do not run on its polling thread: large "
                             "ones (over --rest_large_request_bytes), or all with --grpc_inline_requests=false")
    parser.add_argument("--grpc_inline_requests", type=_bool, default=True,
                        help="true: small unbatched gRPC requests run on the polling thread (fastest for small "
                             "models); false: every request in the --grpc_max_workers pool (for slow models)")
    parser.add_argument("--busy_poll_us", type=int, default=DEFAULT_MAX_US,
                        help="REST's event loop and gRPC's polling thread poll for up to this many "
                             "microseconds before they sleep, adaptively (Linux guest halt polling's "
                             "window: it grows while requests keep arriving within it and shrinks to "
                             "nothing when they are sparse), so a core that would halt between two "
                             "requests stays awake for the next; 0: never poll (not a TF Serving flag)")
    parser.add_argument("--port_file", default=None,
                        help="write {\"port\":..,\"rest_api_port\":..} here once serving (for launchers)")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def server_from_args(args: argparse.Namespace) -> ModelServer:
    return ModelServer(
        model_name=args.model_name, model_base_path=args.model_base_path,
        model_config_file=args.model_config_file, host=args.host, port=args.port,
        rest_api_port=None if args.rest_api_port == 0 else max(args.rest_api_port, 0),
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        max_request_bytes=args.max_request_bytes, rest_inference_threads=args.rest_inference_threads,
        grpc_max_workers=args.grpc_max_workers, grpc_inline=args.grpc_inline_requests,
        busy_poll_us=args.busy_poll_us, enable_model_warmup=args.enable_model_warmup,
        rest_api_enable_cors_support=args.rest_api_enable_cors_support,
        tensorflow_intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        tensorflow_inter_op_parallelism=args.tensorflow_inter_op_parallelism,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        enable_batching=args.enable_batching, batching_parameters_file=args.batching_parameters_file,
        max_decoded_bytes=args.max_decoded_bytes, rest_large_request_bytes=args.rest_large_request_bytes,
        rest_large_request_threads=args.rest_large_request_threads,
        rest_max_pending_large=args.rest_max_pending_large,
        monitoring_config_file=args.monitoring_config_file)


#: grpcio's switch for serving accepted connections from its EventEngine threads (on by default).
#: Off, the gRPC server's own polling thread reads and writes its sockets: a unary call costs ~9
#: thread wake-ups instead of ~15 and ~0.05 ms less server CPU (serving/README.md, "Figures").
GRPC_EXPERIMENTS = "-event_engine_listener"


def prefer_polling_thread_io(environ=os.environ, modules=sys.modules) -> bool:
    """Have the gRPC server do its socket I/O on its polling thread (``GRPC_EXPERIMENTS``), unless
    the environment already sets ``GRPC_EXPERIMENTS`` or grpc is loaded (it reads the variable
    once, when imported). Process-wide, so only the process's entry point calls it. True if set."""
    if "GRPC_EXPERIMENTS" in environ or "grpc" in modules:
        return False
    environ["GRPC_EXPERIMENTS"] = GRPC_EXPERIMENTS
    return True


def run_server(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prefer_polling_thread_io()
    try:
        server = server_from_args(args).start()
    except (RuntimeError, ValueError, OSError) as err:
        print(f"serve: error: {err}", file=sys.stderr)
        return 1
    log.info("serving gRPC on %s:%s, REST on %s:%s", args.host, server.port, args.host, server.rest_api_port)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        Path(tmp).write_text(json.dumps({"port": server.port, "rest_api_port": server.rest_api_port,
                                         "pid": os.getpid()}))
        os.replace(tmp, args.port_file)
    server.serve_until_signal()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.server",
                                     description="The local TF-Serving-compatible model server: REST + gRPC.")
    add_server_flags(parser)
    return run_server(parser.parse_args(argv))
