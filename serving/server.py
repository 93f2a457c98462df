"""The local TF-Serving-compatible model server: REST + gRPC over a ``ModelManager``.

In-process::

    with ModelServer(model_name="m", model_base_path="/models/m") as server:
        RestClient(f"http://127.0.0.1:{server.rest_api_port}", "m").predict(...)

As a background process (what tests and the demo use; the ports are chosen by the child and
reported back through a file, so there are no port races)::

    with ServerProcess(model_name="m", model_base_path="/models/m") as proc:
        proc.rest_url, proc.grpc_target

Command line (flags named as ``tensorflow_model_server``'s)::

    python -m serving.server --port=8500 --rest_api_port=8501 --model_name=m --model_base_path=/models/m

Like ServerCore, the ports open only after the initial load; a model with no loadable version
stops start-up with ``N model(s) did not become available``. SIGTERM/SIGINT stop accepting,
let in-flight requests finish, then exit 0.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from adpush_core.tfenv import import_tensorflow

from serving.manager import ModelConfig, ModelManager, parse_model_config_text

log = logging.getLogger(__name__)
DEFAULT_MAX_REQUEST_BYTES = 64 << 20
DEFAULT_MAX_DECODED_BYTES = 2 << 30


class ModelServer:
    """REST + gRPC server; ``start()`` blocks until every model has a loaded version."""

    def __init__(self, configs: Sequence[ModelConfig] | None = None, *, model_name: str = "default",
                 model_base_path: str | None = None, model_config_file: str | None = None,
                 host: str = "127.0.0.1", port: int | None = 0, rest_api_port: int | None = 0,
                 file_system_poll_wait_seconds: float = 1.0, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 rest_inference_threads: int = 0, grpc_max_workers: int = 16, grpc_inline: bool = True,
                 busy_poll_us: int = 0, enable_model_warmup: bool = True,
                 rest_api_enable_cors_support: bool = False, shutdown_grace_seconds: float = 10.0,
                 tensorflow_intra_op_parallelism: int = 0, tensorflow_inter_op_parallelism: int = 0,
                 rest_api_timeout_in_ms: int = 30000, max_num_load_retries: int = 5,
                 load_retry_interval_micros: int = 60_000_000, enable_batching: bool = False,
                 batching_parameters_file: str | None = None, batching_parameters=None,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES, rest_large_request_bytes: int = 256 << 10,
                 rest_large_request_threads: int = 1, rest_max_pending_large: int = 4,
                 monitoring_config_file: str | None = None, monitoring_config=None):
        if configs is None:
            if model_config_file:
                text = Path(model_config_file).read_text()
                configs = parse_model_config_text(text, base_dir=str(Path(model_config_file).parent))
            elif model_base_path:
                configs = [ModelConfig(name=model_name, base_path=str(model_base_path))]
            else:
                raise ValueError("Both server_model_config_file and model_base_path are empty!")
        self.configs = list(configs)
        self.host = host
        self._ports = (port, rest_api_port)
        self.max_request_bytes = max_request_bytes
        self.rest_inference_threads = rest_inference_threads
        self.max_decoded_bytes = max_decoded_bytes
        self.rest_large = (rest_large_request_bytes, rest_large_request_threads, rest_max_pending_large)
        self.grpc_max_workers = grpc_max_workers
        self.grpc_inline = grpc_inline
        if busy_poll_us < 0:
            raise ValueError(f"--busy_poll_us must be >= 0, got {busy_poll_us}")
        self.busy_poll_us = busy_poll_us
        self.enable_cors = rest_api_enable_cors_support
        self.grace = shutdown_grace_seconds
        self._tf_threads = (tensorflow_intra_op_parallelism, tensorflow_inter_op_parallelism)
        self.rest_timeout_seconds = rest_api_timeout_in_ms / 1000.0
        self.batching_parameters = None
        if enable_batching:
            from serving.batching import BatchingParameters, parse_batching_parameters

            if batching_parameters is None and batching_parameters_file:
                batching_parameters = parse_batching_parameters(Path(batching_parameters_file).read_text())
            self.batching_parameters = batching_parameters or BatchingParameters()
        elif batching_parameters_file:
            log.warning("--batching_parameters_file is ignored without --enable_batching")
        self._batcher = None
        from serving.metrics import ServingMetrics, read_monitoring_config

        # Requests are always counted; --monitoring_config_file decides whether REST serves them.
        self.monitoring = monitoring_config or read_monitoring_config(monitoring_config_file)
        self.metrics = ServingMetrics()
        self.manager = ModelManager(self.configs, poll_wait_seconds=file_system_poll_wait_seconds,
                                    enable_warmup=enable_model_warmup,
                                    max_num_load_retries=max_num_load_retries,
                                    load_retry_interval_seconds=load_retry_interval_micros / 1e6)
        self._grpc = None
        self._rest = None
        self.port: int | None = None
        self.rest_api_port: int | None = None

    def start(self) -> "ModelServer":
        from serving.grpc_service import GrpcServer
        from serving.metrics import aiohttp_middleware
        from serving.rest import RestServer

        self._configure_tf_threads()
        if self.batching_parameters is not None:
            from serving.batching import BatchScheduler

            self._batcher = self.manager.batcher = BatchScheduler(self.batching_parameters)
        self.manager.start()
        missing = self.manager.unavailable_models()
        if missing:
            self.manager.stop()
            self._stop_batcher()
            raise RuntimeError(f"{len(missing)} model(s) did not become available: {{{', '.join(missing)}}}")
        grpc_port, rest_port = self._ports
        if grpc_port is not None:
            self._grpc = GrpcServer(self.manager, self.host, grpc_port, max_workers=self.grpc_max_workers,
                                    max_request_bytes=self.max_request_bytes,
                                    max_decoded_bytes=self.max_decoded_bytes, metrics=self.metrics,
                                    large_request_bytes=self.rest_large[0], inline=self.grpc_inline,
                                    busy_poll_us=self.busy_poll_us)
            self._grpc.start()
            self.port = self._grpc.port
        if rest_port is not None:
            self._rest = RestServer(self.manager, self.host, rest_port, max_request_bytes=self.max_request_bytes,
                                    inference_threads=self.rest_inference_threads, enable_cors=self.enable_cors,
                                    shutdown_timeout=self.grace, timeout_seconds=self.rest_timeout_seconds,
                                    large_request_bytes=self.rest_large[0], large_request_threads=self.rest_large[1],
                                    max_pending_large=self.rest_large[2], max_decoded_bytes=self.max_decoded_bytes,
                                    middlewares=[aiohttp_middleware(self.metrics, self.manager, self.monitoring)],
                                    busy_poll_us=self.busy_poll_us)
            self._rest.start()
            self.rest_api_port = self._rest.port
        return self

    def _configure_tf_threads(self) -> None:
        intra, inter = self._tf_threads
        if not (intra or inter):
            return
        tf = import_tensorflow()

        try:
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError as err:  # TF already initialised in this process
            log.warning("cannot set TensorFlow thread pools: %s", err)

    def stop(self) -> None:
        """Stop accepting on both ports, finish in-flight requests, stop polling."""
        threads = []
        if self._rest is not None:
            threads.append(threading.Thread(target=self._rest.stop))
        if self._grpc is not None:
            threads.append(threading.Thread(target=self._grpc.stop, args=(self.grace,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._rest = self._grpc = None
        self.manager.stop()
        self._stop_batcher()

    def _stop_batcher(self) -> None:
        if self._batcher is not None:
            self._batcher.stop()
            self._batcher = None

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_until_signal(self) -> None:
        """Block until SIGTERM/SIGINT, then stop cleanly (main thread only)."""
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        while not done.wait(0.5):
            pass
        log.info("signal received: shutting down")
        self.stop()


# ------------------------------------------------------------------------------------------------
# Command line


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
    parser.add_argument("--busy_poll_us", type=int, default=0,
                        help="after a request, REST's event loop and gRPC's polling thread poll without "
                             "sleeping for this many microseconds, keeping the core awake for the next one "
                             "(lower latency at low load, up to that much CPU after each burst; 0: off; not a "
                             "TF Serving flag)")
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
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.split("\n")[0])
    add_server_flags(parser)
    return run_server(parser.parse_args(argv))


# ------------------------------------------------------------------------------------------------
# Background process for tests and the demo


class ServerProcess:
    """``python -m serving.server`` in a child process: starts, waits until ready, stops cleanly.

    Keyword arguments are server flags (``model_name=``, ``model_base_path=``,
    ``model_config_file=``, ``file_system_poll_wait_seconds=``...). Ports default to 0: the child
    binds free ports and reports them.
    """

    def __init__(self, startup_timeout: float = 180.0, log_path: str | None = None, **flags):
        flags.setdefault("port", 0)
        flags.setdefault("rest_api_port", 0)
        self.flags = flags
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.rest_api_port: int | None = None
        self._tmp = None
        self._log = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_api_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        self._tmp = tempfile.TemporaryDirectory(prefix="adpush-serve-")
        port_file = os.path.join(self._tmp.name, "ports.json")
        cmd = [sys.executable, "-m", "serving.server", f"--port_file={port_file}"]
        for key, value in self.flags.items():
            if key == "rest_api_port" and value == 0:
                value = -1  # child: ephemeral REST port (0 would disable REST, as in TF Serving)
            cmd.append(f"--{key}={value}")
        log_path = self.log_path or os.path.join(self._tmp.name, "server.log")
        self._log = open(log_path, "wb")
        self.log_file = log_path
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                info = json.loads(Path(port_file).read_text())
                self.port, self.rest_api_port = info["port"], info["rest_api_port"]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self._log.flush()
        tail = Path(log_path).read_text(errors="replace")[-4000:]
        self.stop()
        raise RuntimeError(f"model server did not start; log:\n{tail}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for a clean exit (kill after ``timeout``); returns the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            code = self.proc.returncode
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
