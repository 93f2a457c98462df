"""Prometheus metrics of the local server, as TensorFlow Serving exposes them.

TF Serving (``--monitoring_config_file`` with ``prometheus_config { enable: true path: "…" }``)
serves its monitoring registry on the REST port, default path ``/monitoring/prometheus/metrics``,
as ``text/plain`` (``tensorflow_serving/util/prometheus_exporter.cc``: metric names with every
``/`` turned into ``:``, counters as ``# TYPE name counter`` then ``name{labels} value``,
histograms as ``_bucket{…,le="…"}`` cumulative counts ending in ``le="+Inf"``, ``_sum``,
``_count``). This module records the same request metrics, with TF Serving's names, labels and
buckets (``tensorflow_serving/servables/tensorflow/util.cc``, ``model_servers/http_server.cc``,
``model_servers/prediction_service_impl.cc`` at 9d981c5, 2026-07-30):

* ``:tensorflow:serving:request_count{model_name, status}`` — every REST ``/v1/…`` request and
  every gRPC Predict / Classify / Regress; ``status`` is the absl code name (``OK``,
  ``INVALID_ARGUMENT``, ``NOT_FOUND``, …). For REST it is read back from the HTTP status through
  TF Serving's ``ToHTTPStatusCode`` table (400 → ``INVALID_ARGUMENT``, which also stands for
  ``FAILED_PRECONDITION`` / ``OUT_OF_RANGE``, as the response does not say which).
* ``:tensorflow:serving:request_latency{model_name, API, entrypoint}`` — histogram of successful
  requests' wall time in microseconds, buckets ``Exponential(10, 1.8, 33)`` (10 µs … ~24 min, then
  +Inf); ``API`` is the REST method in the URL (``predict``, ``classify``, ``regress``; empty for
  GET status/metadata) or the gRPC method (``Predict``, …); ``entrypoint`` is ``REST`` or ``GRPC``.
* ``:adpush:serving:request_count{model_name, version, API, entrypoint, status}`` — not in TF
  Serving: the same requests broken down by the version that answered (the one the request
  resolved to; for a failed request the version it asked for, or empty) and by API.

Not recorded (they live inside TF Serving's servable code, not at its entry points):
``runtime_latency`` and ``request_example_count(s)``.

Recording happens at the entry points only — an aiohttp middleware (``aiohttp_middleware``) and
the gRPC server's end of a call (``serving.grpc_service``) — so the request handlers know nothing of it.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = "/monitoring/prometheus/metrics"
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
ADPUSH_REQUEST_COUNT = ":adpush:serving:request_count"
#: ``monitoring::Buckets::Exponential(10, 1.8, 33)``: 10·1.8^i, i = 0..32 (then DBL_MAX = +Inf).
LATENCY_BUCKETS = tuple(10.0 * 1.8**i for i in range(33))

#: TF Serving's ``ToHTTPStatusCode`` read backwards (ambiguous codes → the common one).
_CODE_OF_HTTP = {200: "OK", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED",
                 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}


def code_of_http_status(status: int) -> str:
    return _CODE_OF_HTTP.get(status, "UNKNOWN" if status >= 500 else "INVALID_ARGUMENT")


# --- the registry ---------------------------------------------------------------------------------

def _format_double(value: float) -> str:
    """absl::StrCat of a double (six significant digits, %g)."""
    return f"{value:.6g}"


def _label_text(names, values) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    return ",".join(f'{n}="{escape(str(v))}"' for n, v in zip(names, values))


class ServingMetrics:
    """Thread-safe request counters and latency histograms (REST loop + gRPC worker threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}
        self._adpush_counts: dict[tuple, int] = {}
        self._latency: dict[tuple, list] = {}   # key -> [bucket counts (34), sum]

    def record(self, *, model_name: str, api: str, entrypoint: str, status: str, version: str = "",
               latency_us: float | None = None) -> None:
        """One finished request; ``latency_us`` is added to the histogram when status is OK."""
        with self._lock:
            key = (model_name, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            key = (model_name, version, api, entrypoint, status)
            self._adpush_counts[key] = self._adpush_counts.get(key, 0) + 1
            if status == "OK" and latency_us is not None:
                cell = self._latency.setdefault((model_name, api, entrypoint),
                                                [[0] * (len(LATENCY_BUCKETS) + 1), 0.0])
                # TF's Histogram::Add: the first bucket whose limit is above the value.
                cell[0][bisect.bisect_right(LATENCY_BUCKETS, latency_us)] += 1
                cell[1] += latency_us

    def render(self) -> str:
        """The Prometheus text page, metric by metric in name order, as TF Serving writes it."""
        with self._lock:
            counts = sorted(self._counts.items())
            adpush = sorted(self._adpush_counts.items())
            latency = sorted((k, (list(v[0]), v[1])) for k, v in self._latency.items())
        lines = [f"# TYPE {ADPUSH_REQUEST_COUNT} counter"]
        lines += [f"{ADPUSH_REQUEST_COUNT}{{{_label_text(('model_name', 'version', 'API', 'entrypoint', 'status'), k)}}} {n}"
                  for k, n in adpush]
        lines.append(f"# TYPE {REQUEST_COUNT} counter")
        lines += [f"{REQUEST_COUNT}{{{_label_text(('model_name', 'status'), k)}}} {n}" for k, n in counts]
        lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
        for key, (buckets, total) in latency:
            labels = _label_text(("model_name", "API", "entrypoint"), key)
            cumulative = 0
            for i, count in enumerate(buckets):
                cumulative += count
                le = _format_double(LATENCY_BUCKETS[i]) if i < len(LATENCY_BUCKETS) else "+Inf"
                lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="{le}"}} {cumulative}')
            lines.append(f"{REQUEST_LATENCY}_sum{{{labels}}} {_format_double(total)}")
            lines.append(f"{REQUEST_LATENCY}_count{{{labels}}} {cumulative}")
        return "\n".join(lines) + "\n"


# --- --monitoring_config_file ----------------------------------------------------------------------

@dataclass(frozen=True)
class MonitoringConfig:
    """``tensorflow.serving.MonitoringConfig`` (``config/monitoring_config.proto``)."""

    prometheus_enable: bool = False
    prometheus_path: str = DEFAULT_PATH


def _monitoring_config_message():
    """The MonitoringConfig proto class, built from its two-message .proto (tensorflow-serving-api
    does not ship it), in a private descriptor pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="tensorflow_serving/config/monitoring_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


def parse_monitoring_config(text: str, where: str = "monitoring config") -> MonitoringConfig:
    """Parse the ascii MonitoringConfig TF Serving reads (``ParseProtoTextFile``); an error names
    the file, line and column."""
    from google.protobuf import text_format

    message = _monitoring_config_message()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as err:
        raise ValueError(f"{where}: not a MonitoringConfig text proto: {err}") from err
    prometheus = message.prometheus_config
    path = prometheus.path or DEFAULT_PATH
    if not path.startswith("/"):
        raise ValueError(f"{where}: prometheus_config.path must start with '/', got {path!r}")
    return MonitoringConfig(prometheus_enable=prometheus.enable, prometheus_path=path)


def read_monitoring_config(path: str | Path | None) -> MonitoringConfig:
    if not path:
        return MonitoringConfig()
    return parse_monitoring_config(Path(path).read_text(), where=str(path))


# --- the entry points --------------------------------------------------------------------------

def _rest_request_labels(manager, path: str, method: str, status: int) -> tuple[str, str, str]:
    """(model_name, API, version) of a REST request, parsed from its path as TF Serving does."""
    from urllib.parse import unquote

    from serving.rest import GET_RE, POST_RE

    match = POST_RE.fullmatch(path) if method == "POST" else GET_RE.fullmatch(path) if method == "GET" else None
    if match is None or not match.group(1):
        return "", "", ""
    name = unquote(match.group(1))
    api = match.group(4).lower() if method == "POST" else ""
    version = match.group(2) or ""
    if status == 200 and method == "POST":
        try:
            label = match.group(3)
            version = str(manager.get(name, int(version) if version else None,
                                      unquote(label) if label else None).version)
        except Exception:  # noqa: BLE001 - swapped out since: keep the requested version
            pass
    return name, api, version


def aiohttp_middleware(metrics: ServingMetrics, manager, config: MonitoringConfig):
    """An aiohttp middleware that serves the Prometheus page (when enabled) and records every
    ``/v1/…`` request's count and, on success, latency."""
    from aiohttp import web

    from serving.rest import V1_RE

    @web.middleware
    async def record_metrics(request, handler):
        if config.prometheus_enable and request.path == config.prometheus_path:
            return web.Response(status=200, text=metrics.render(), content_type="text/plain")
        path = request.raw_path
        if not V1_RE.fullmatch(path):
            return await handler(request)
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            elapsed_us = (time.perf_counter() - start) * 1e6
            name, api, version = _rest_request_labels(manager, path, request.method, status)
            metrics.record(model_name=name, api=api, entrypoint="REST", status=code_of_http_status(status),
                           version=version, latency_us=elapsed_us)

    return record_metrics
