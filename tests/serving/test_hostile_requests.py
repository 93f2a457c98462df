"""Hostile requests: TF Serving's JSON parser (rapidjson 1.1.0) on the points Python's json differs,
size and memory limits with clear 4xx bodies, large requests off the event loop, gRPC alias errors."""
from __future__ import annotations

import base64
import json
import threading
import time

import grpc
import numpy as np
import pytest
import requests

from serving.errors import ServingError
from serving.json_text import dbg, parse_json, string_bytes


def _error(body: bytes) -> str:
    with pytest.raises(ServingError) as err:
        parse_json(body)
    return err.value.message


@pytest.mark.parametrize("body, expected", [
    (b"[Inf, -Inf, Infinity, -Infinity]", [float("inf"), float("-inf"), float("inf"), float("-inf")]),
    (b'{"a": 1, "a": 2}', {"a": 1}),                       # FindMember: the first wins
    (b"[1, 2] trailing bytes", [1, 2]),                     # kParseStopWhenDoneFlag
    (b"[" + b"9" * 25 + b"]", [1e25]),                     # beyond uint64: a double
    (b'"\\ud83d\\ude00"', "\U0001F600"),                   # a valid surrogate pair
])
def test_values_as_rapidjson_reads_them(body, expected):
    assert parse_json(body) == expected


def test_nan_tokens():
    assert all(np.isnan(v) for v in parse_json(b"[NaN, -NaN]"))


@pytest.mark.parametrize("body, message", [
    (b'{"s": "\\ud800"}', "JSON Parse error: The surrogate pair in string is invalid. at offset: 7"),
    (b'{"s": "\\ud800\\u0041"}', "The surrogate pair in string is invalid."),
    (b"[1e400]", "JSON Parse error: Number too big to be stored in double. at offset: 1"),
    (b"[" + b"1" * 5000 + b"]", "Number too big to be stored in double."),  # int() would refuse 4,300+ digits
    (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
    (b"", "JSON Parse error: The document is empty"),
    (b"[Infinit]", "Invalid value."),
    (b"[1,]", "JSON Parse error: Invalid value. at offset: 3"),
])
def test_errors_as_rapidjson_gives_them(body, message):
    assert message in _error(body)


def test_string_bytes_are_kept_as_sent():
    assert string_bytes(parse_json(b'["\xff\xfe caf\xc3\xa9"]')[0]) == b"\xff\xfe caf\xc3\xa9"  # not U+FFFD
    assert string_bytes(parse_json(b'["\\udc00x"]')[0]) == b"\xed\xb0\x80x"  # rapidjson 1.1.0's encoding


def test_any_depth_parses_and_debug_strings_stay_short():
    deep = b'{"ignored": ' + b"[" * 100_000 + b"]" * 100_000 + b', "instances": [1.0]}'
    assert parse_json(deep)["instances"] == [1.0]
    text = dbg(parse_json(b'{"signature_name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    assert text.startswith('{\n    "signature_name": [[[[') and len(text.encode()) <= 256


def test_large_bodies_parse_like_pythons_json():
    rng = np.random.default_rng(0)
    doc = {"instances": [{"a": float(v), "b": [int(i), -int(i)], "c": f"s{i}", "d": None, "e": True}
                         for i, v in enumerate(rng.random(20_000))], "z": [[0.5] * 3] * 1000}
    body = json.dumps(doc).encode()
    assert len(body) > 1 << 20  # the sliced path, not the one-call C decoder
    assert parse_json(body) == doc


def test_json_value_cap_is_a_413():
    from serving.rest import dispatch

    body = json.dumps({"instances": [[1.0]] * 200_000}).encode()
    status, text = dispatch(None, "POST", "/v1/models/m:predict", body, max_json_values=100_000)
    assert status == 413 and "over the server's limit on decoded request memory (--max_decoded_bytes)" in \
        json.loads(text)["error"]


# ---------------------------------------------------------------------------------------------
# Through a running server

@pytest.fixture(scope="module")
def hostile_server(model_base, tmp_path_factory):
    import tensorflow as tf

    import toy_models
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
        def echo(self, s):
            return {"echo_bytes": tf.identity(s), "length": tf.strings.length(s)}

    base = tmp_path_factory.mktemp("echo")
    module = Echo()
    toy_models.export_module(module, {"serving_default": module.echo}, base, "echo", version=1, warmup_requests=None)
    configs = [ModelConfig("half_plus_two", str(model_base["base"] / "half_plus_two")),
               ModelConfig("echo", str(base / "echo"))]
    srv = ModelServer(configs, file_system_poll_wait_seconds=0, rest_large_request_bytes=64 << 10,
                      max_decoded_bytes=2 << 30).start()
    yield srv
    srv.stop()


def _url(srv, model):
    return f"http://127.0.0.1:{srv.rest_api_port}/v1/models/{model}:predict"


def test_non_utf8_bytes_reach_the_model_unchanged(hostile_server):
    body = b'{"instances": ["\xff\xfeab", "caf\xc3\xa9"]}'
    r = requests.post(_url(hostile_server, "echo"), data=body, timeout=30)
    assert r.status_code == 200
    out = r.json()["predictions"]
    assert [base64.b64decode(p["echo_bytes"]["b64"]) for p in out] == [b"\xff\xfeab", b"caf\xc3\xa9"]
    assert [p["length"] for p in out] == [4, 5]


def test_lone_surrogate_is_a_400_and_deep_nesting_follows_tf_serving(hostile_server):
    r = requests.post(_url(hostile_server, "echo"), data=b'{"instances": ["\\ud800"]}', timeout=30)
    assert r.status_code == 400 and "The surrogate pair in string is invalid." in r.json()["error"]
    deep = b"[" * 100_000 + b"]" * 100_000
    r = requests.post(_url(hostile_server, "half_plus_two"), data=b'{"x": ' + deep + b', "instances": [[1.0]]}',
                      timeout=60)
    assert r.status_code == 200 and r.json() == {"predictions": [[2.5]]}
    r = requests.post(_url(hostile_server, "half_plus_two"), data=b'{"signature_name": ' + deep + b"}", timeout=60)
    assert r.status_code == 400 and "'signature_name' key must be a string value." in r.json()["error"]
    for depth in (100, 100_000):  # over numpy's 64 and TF's 254 dimensions
        nested = b"[" * depth + b"1.0" + b"]" * depth
        for body in (b'{"instances": ' + nested + b"}", b'{"inputs": {"x": ' + nested + b"}}",
                     b'{"instances": [{"x": ' + nested + b"}]}"):
            r = requests.post(_url(hostile_server, "half_plus_two"), data=body, timeout=60)
            assert r.status_code == 400 and r.json()["error"] == "tensor parsing error: x", (depth, body[:30])


def test_inf_is_accepted_and_content_type_has_no_charset(hostile_server):
    r = requests.post(_url(hostile_server, "half_plus_two"), data=b'{"instances": [[Inf], [-Inf]]}', timeout=30)
    assert r.status_code == 200 and r.text.replace(" ", "").replace("\n", "") == \
        '{"predictions":[[Infinity],[-Infinity]]}'
    assert r.headers["Content-Type"] == "application/json"
    r = requests.post(_url(hostile_server, "nope"), data=b"{}", timeout=30)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"


def test_small_requests_are_answered_while_a_large_one_runs(hostile_server):
    """The large request is decoded and run off the event loop: small ones keep completing."""
    rng = np.random.default_rng(1)
    big = ('{"instances": [' + ", ".join(f"[{v:.6f}]" for v in rng.random(700_000)) + "]}").encode()
    done = {}

    def run_big():
        r = requests.post(_url(hostile_server, "half_plus_two"), data=big, timeout=300)
        done["big"] = (time.perf_counter(), r.status_code, len(r.json()["predictions"]))

    thread = threading.Thread(target=run_big)
    start = time.perf_counter()
    thread.start()
    time.sleep(0.3)  # the body is sent
    small = []
    with requests.Session() as session:
        while thread.is_alive() and len(small) < 50:
            r = session.post(_url(hostile_server, "half_plus_two"), data=b'{"instances": [[1.0]]}', timeout=60)
            small.append((time.perf_counter(), r.status_code))
    thread.join(300)
    assert done["big"][1:] == (200, 700_000)
    assert small and all(status == 200 for _, status in small)
    answered_during = [t for t, _ in small if t < done["big"][0]]
    assert len(answered_during) >= 5, (len(small), done["big"][0] - start)


def test_grpc_decoded_size_cap_and_alias_error(hostile_server):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{hostile_server.port}"))
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    # one float_val, a shape of 10^12 x 1: make_ndarray would repeat it into 4 TB
    req.inputs["x"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=10**12), tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over the server's limit" in err.value.details()
    ok = predict_pb2.PredictRequest()
    ok.model_spec.name = "half_plus_two"
    ok.inputs["x"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1), tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))
    assert list(stub.Predict(ok, timeout=30).outputs["y"].float_val) == [2.5]  # still serving
