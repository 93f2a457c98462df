"""The local TF-Serving-compatible model server: REST + gRPC over a ``ModelManager``.

In-process::

    with ModelServer(model_name="m", model_base_path="/models/m") as server:
        RestClient(f"http://127.0.0.1:{server.rest_api_port}", "m").predict(...)

As a background process: ``serving.server_process.ServerProcess``. Command line (flags named as
``tensorflow_model_server``'s, ``serving.server_flags``)::

    python -m serving.server --port=8500 --rest_api_port=8501 --model_name=m --model_base_path=/models/m

Like ServerCore, the ports open only after the initial load; a model with no loadable version
stops start-up with ``N model(s) did not become available``. SIGTERM/SIGINT stop accepting,
let in-flight requests finish, then exit 0.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from adpush_core.tfenv import import_tensorflow

from serving.idle_poll import DEFAULT_MAX_US
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
                 busy_poll_us: int = DEFAULT_MAX_US, enable_model_warmup: bool = True,
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


if __name__ == "__main__":
    from serving.server_flags import main

    sys.exit(main())
