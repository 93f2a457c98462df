"""Prometheus metrics of the local server (``--monitoring_config_file``): TF Serving's names,
labels and buckets, scraped over REST and parsed with ``prometheus_client``'s parser."""
from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.metrics import LATENCY_BUCKETS, parse_monitoring_config
from serving.tensor_proto import ndarray_to_tensor_proto

CONFIG = 'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n'


def test_monitoring_config_text_format():
    config = parse_monitoring_config(CONFIG)
    assert config.prometheus_enable and config.prometheus_path == "/monitoring/prometheus/metrics"
    assert parse_monitoring_config("prometheus_config { enable: true }").prometheus_path == \
        "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
    assert not parse_monitoring_config("").prometheus_enable
    with pytest.raises(ValueError, match=r'm\.txt: not a MonitoringConfig text proto: 1:21 : .*has no field named "enabled"'):
        parse_monitoring_config("prometheus_config { enabled: true }", where="m.txt")
    with pytest.raises(ValueError, match="must start with '/'"):
        parse_monitoring_config('prometheus_config { enable: true path: "metrics" }')


@pytest.fixture(scope="module")
def monitored(model_base, tmp_path_factory):
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    config = tmp_path_factory.mktemp("monitoring") / "monitoring.config"
    config.write_text(CONFIG)
    base = model_base["base"]
    server = ModelServer([ModelConfig("half_plus_two", str(base / "half_plus_two"))],
                         file_system_poll_wait_seconds=0, monitoring_config_file=str(config)).start()
    yield server
    server.stop()


def _scrape(url):
    response = requests.get(f"{url}/monitoring/prometheus/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}, response.text


def _samples(family, suffix=""):
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name.endswith(suffix)}


def test_request_counts_and_latency_histograms_by_model_version_api_and_status(monitored):
    rest = f"http://127.0.0.1:{monitored.rest_api_port}"
    for _ in range(3):
        assert requests.post(f"{rest}/v1/models/half_plus_two:predict", json={"instances": [1.0]},
                             timeout=10).status_code == 200
    assert requests.post(f"{rest}/v1/models/half_plus_two:predict", data="{", timeout=10).status_code == 400
    assert requests.post(f"{rest}/v1/models/nope:predict", json={"instances": [1.0]}, timeout=10).status_code == 404
    assert requests.get(f"{rest}/v1/models/half_plus_two", timeout=10).status_code == 200
    assert requests.get(f"{rest}/not-an-api", timeout=10).status_code == 404  # not /v1: not counted
    with grpc.insecure_channel(f"127.0.0.1:{monitored.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(ndarray_to_tensor_proto(np.array([[1.0], [2.0]], np.float32)))
        for _ in range(2):
            stub.Predict(request, timeout=10)
        request.model_spec.signature_name = "nope"
        with pytest.raises(grpc.RpcError) as err:
            stub.Predict(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    families, text = _scrape(rest)
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert "# TYPE :tensorflow:serving:request_latency histogram" in text
    counts = _samples(families[":tensorflow:serving:request_count"])
    key = lambda **labels: tuple(sorted(labels.items()))  # noqa: E731
    assert counts[key(model_name="half_plus_two", status="OK")] == 3 + 1 + 2
    assert counts[key(model_name="half_plus_two", status="INVALID_ARGUMENT")] == 1
    assert counts[key(model_name="half_plus_two", status="FAILED_PRECONDITION")] == 1
    assert counts[key(model_name="nope", status="NOT_FOUND")] == 1
    assert sum(counts.values()) == 9

    by_version = _samples(families[":adpush:serving:request_count"])
    assert by_version[key(model_name="half_plus_two", version="123", API="predict", entrypoint="REST",
                          status="OK")] == 3
    assert by_version[key(model_name="half_plus_two", version="", API="", entrypoint="REST", status="OK")] == 1
    assert by_version[key(model_name="half_plus_two", version="123", API="Predict", entrypoint="GRPC",
                          status="OK")] == 2
    assert by_version[key(model_name="half_plus_two", version="", API="Predict", entrypoint="GRPC",
                          status="FAILED_PRECONDITION")] == 1
    assert sum(by_version.values()) == sum(counts.values())

    latency = families[":tensorflow:serving:request_latency"]
    rest_predict = [s for s in latency.samples
                    if s.labels.get("API") == "predict" and s.labels["entrypoint"] == "REST"]
    buckets = [s for s in rest_predict if s.name.endswith("_bucket")]
    # Exponential(10, 1.8, 33) limits, then +Inf: 34 cumulative buckets, successes only.
    assert [b.labels["le"] for b in buckets][:4] == ["10", "18", "32.4", "58.32"]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1 and buckets[-1].labels["le"] == "+Inf"
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    count = next(s.value for s in rest_predict if s.name.endswith("_count"))
    total = next(s.value for s in rest_predict if s.name.endswith("_sum"))
    assert count == buckets[-1].value == 3
    assert 0 < total / count < 5e6  # microseconds: a 1-instance predict takes well under 5 s
    grpc_predict = [s for s in latency.samples if s.labels.get("entrypoint") == "GRPC" and s.name.endswith("_count")]
    assert [s.value for s in grpc_predict] == [2]


def test_metrics_path_is_off_without_the_config_and_follows_it(model_base, tmp_path):
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    base = model_base["base"]
    configs = [ModelConfig("half_plus_two", str(base / "half_plus_two"))]
    with ModelServer(configs, file_system_poll_wait_seconds=0, port=None) as server:
        r = requests.get(f"http://127.0.0.1:{server.rest_api_port}/monitoring/prometheus/metrics", timeout=10)
        assert r.status_code == 404  # as TF Serving without --monitoring_config_file
    custom = tmp_path / "m.config"
    custom.write_text('prometheus_config { enable: true path: "/metrics" }')
    with ModelServer(configs, file_system_poll_wait_seconds=0, port=None,
                     monitoring_config_file=str(custom)) as server:
        url = f"http://127.0.0.1:{server.rest_api_port}"
        assert requests.get(f"{url}/metrics", timeout=10).text.startswith("# TYPE :adpush:serving:request_count")


def test_serve_refuses_a_bad_monitoring_config(tmp_path, model_base):
    bad = tmp_path / "bad.config"
    bad.write_text("prometheus_config { enable: maybe }")
    done = subprocess.run([sys.executable, "-m", "serving.server", "--port=0", "--rest_api_port=-1",
                           "--model_name=half_plus_two", f"--model_base_path={model_base['base'] / 'half_plus_two'}",
                           f"--monitoring_config_file={bad}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"serve: error: {bad}: not a MonitoringConfig text proto" in done.stderr
