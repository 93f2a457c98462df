"""Property-based tests: hostile REST bodies and gRPC requests against the local server.

REST bodies go through ``rest.dispatch`` (the whole protocol logic: parse, route, decode,
predict, format) on the session server's models, and a smaller set through the real HTTP
server; gRPC requests through the real gRPC server. Asserted: never a 5xx / INTERNAL / UNKNOWN,
every error is TF Serving's ``{"error": ...}`` body, well-formed requests get exactly
y = 0.5·x + 2 (half_plus_two), the parser agrees with Python's ``json`` wherever their grammars
agree, and the server keeps answering afterwards.

Deterministic for CI (``derandomize=True``, fixed ``max_examples``). Cases run:
``pytest tests/serving/test_request_properties.py --hypothesis-show-statistics``.
"""
from __future__ import annotations

import json
import math

import grpc
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from serving.json_text import parse_json
from serving.rest import dispatch

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.just({"b64": "AAEC"}), st.just({"b64": "!!"}))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.sampled_from(["x", "y", "b64", "instances", "inputs",
                                                                     "signature_name", "examples", "context"]),
                                                    children, max_size=4)), max_leaves=20)
paths = st.sampled_from([
    "/v1/models/half_plus_two:predict", "/v1/models/half_plus_two:regress", "/v1/models/half_plus_two:classify",
    "/v1/models/keyword_ctr:predict", "/v1/models/half_plus_two/versions/123:predict",
    "/v1/models/half_plus_two/labels/stable:predict", "/v1/models/nope:predict",
    "/v1/models/half_plus_two/versions/99999999999999999999:predict"])


def _text(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def mangle(body: bytes, data) -> bytes:
    """Byte-level damage: truncation, inserted bytes, rapidjson-only tokens, deep nesting."""
    kind = data.draw(st.sampled_from(["none", "truncate", "insert", "inf", "deep", "surrogate", "bigint"]))
    if kind == "truncate":
        return body[:data.draw(st.integers(0, len(body)))]
    if kind == "insert":
        at = data.draw(st.integers(0, len(body)))
        return body[:at] + data.draw(st.binary(min_size=1, max_size=6)) + body[at:]
    if kind == "inf":
        return body.replace(b"Infinity", data.draw(st.sampled_from([b"Inf", b"-Inf", b"Infinit", b"NaN", b"-NaN"])))
    if kind == "deep":
        depth = data.draw(st.sampled_from([10, 64, 65, 100, 255, 1000, 50_000]))
        return b'{"' + data.draw(st.sampled_from([b"x", b"signature_name", b"instances", b"inputs"])) + b'": ' + \
            b"[" * depth + b"]" * depth + b"}"
    if kind == "surrogate":
        return body.replace(b'"', b'"\\ud800', 1)
    if kind == "bigint":
        return b'{"instances": [[' + b"9" * data.draw(st.sampled_from([19, 25, 400, 5000])) + b"]]}"
    return body


def _check_response(status: int, text: str):
    assert status < 500, (status, text[:300])
    doc = json.loads(text, parse_constant=float)  # NaN/Infinity are bare tokens, as TF Serving writes them
    assert isinstance(doc, dict)
    if status != 200:
        assert list(doc) == ["error"] and isinstance(doc["error"], str) and doc["error"]
    return doc


@SETTINGS
@given(path=paths, doc=st.one_of(json_values, st.dictionaries(
    st.sampled_from(["instances", "inputs", "signature_name", "examples", "context"]), json_values, max_size=3)),
       data=st.data())
def test_rest_bodies_never_5xx(server, path, doc, data):
    body = mangle(_text(doc), data)
    status, text = dispatch(server.manager, "POST", path, body, max_json_values=1_000_000)
    _check_response(status, text)


@SETTINGS
@given(body=st.binary(max_size=200))
def test_rest_random_bytes_never_5xx(server, body):
    status, text = dispatch(server.manager, "POST", "/v1/models/half_plus_two:predict", body)
    _check_response(status, text)


xs = st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=30)


@SETTINGS
@given(values=xs, row=st.booleans(), nested=st.booleans())
def test_well_formed_predicts_are_exact(server, values, row, nested):
    x = [[v] for v in values]
    doc = {"instances": x} if row else {"inputs": {"x": x} if nested else x}
    status, text = dispatch(server.manager, "POST", "/v1/models/half_plus_two:predict", _text(doc))
    out = _check_response(status, text)
    got = np.asarray(out["predictions" if row else "outputs"], np.float32)
    want = np.float32(0.5) * np.asarray(x, np.float32) + np.float32(2.0)
    assert status == 200 and np.array_equal(got, want)


def _first_key_wins(pairs):
    out = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=json_values, pad=st.sampled_from([0, 300_000]))
def test_parser_agrees_with_python_json_where_grammars_agree(doc, pad):
    body = _text(doc)
    if pad:  # large bodies take the sliced parser
        body = b'{"pad": [' + b"1, " * (pad // 3) + b'1], "doc": ' + body + b"}"
    try:
        expected = json.loads(body, object_pairs_hook=_first_key_wins)
    except ValueError:
        return
    assume(not any(abs(v) >= 2**64 for v in _ints(expected)))  # rapidjson: doubles beyond uint64
    got = parse_json(body)
    assert _same(got, expected)


def _ints(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            yield v


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=paths, doc=json_values, data=st.data())
def test_rest_over_http_never_5xx(rest_url, path, doc, data):
    body = mangle(_text({"instances": doc}), data)
    r = requests.post(rest_url + path, data=body, timeout=60)
    _check_response(r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"


# --- gRPC ----------------------------------------------------------------------------------
dtypes = st.sampled_from([1, 2, 3, 7, 9, 10, 19, 0, 100])  # float, double, int32, string, int64, bool, half, invalid


@st.composite
def tensor_protos(draw):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    dims = draw(st.lists(st.one_of(st.integers(0, 3), st.sampled_from([-1, 10**12, 2**40])), max_size=3))
    proto = tensor_pb2.TensorProto(dtype=draw(dtypes), tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims],
        unknown_rank=draw(st.booleans()) and not dims))
    kind = draw(st.sampled_from(["float", "int", "string", "content", "none"]))
    if kind == "float":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=4)))
    elif kind == "int":
        proto.int64_val.extend(draw(st.lists(st.integers(-2**63, 2**63 - 1), max_size=4)))
    elif kind == "string":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=6), max_size=4)))
    elif kind == "content":
        proto.tensor_content = draw(st.binary(max_size=24))
    return proto


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(inputs=st.dictionaries(st.sampled_from(["x", "z", "inputs", ""]), tensor_protos(), max_size=3),
       signature=st.sampled_from(["", "serving_default", "regress_x_to_y", "nope"]),
       output_filter=st.lists(st.sampled_from(["y", "y", "nope"]), max_size=2),
       model=st.sampled_from(["half_plus_two", "keyword_ctr", ""]))
def test_grpc_requests_never_internal(grpc_target, inputs, signature, output_filter, model):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = _stub(grpc_target, prediction_service_pb2_grpc)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = signature
    for alias, proto in inputs.items():
        req.inputs[alias].CopyFrom(proto)
    req.output_filter.extend(output_filter)
    try:
        stub.Predict(req, timeout=60)
    except grpc.RpcError as err:
        assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                                  grpc.StatusCode.UNAVAILABLE), (err.code(), err.details())
        assert err.details()


_STUBS: dict = {}


def _stub(target, module):
    if target not in _STUBS:
        _STUBS[target] = module.PredictionServiceStub(grpc.insecure_channel(target))
    return _STUBS[target]


def test_server_still_serves_after_the_properties(rest_url):
    r = requests.post(f"{rest_url}/v1/models/half_plus_two:predict", data=b'{"instances": [[1.0]]}', timeout=30)
    assert r.status_code == 200 and r.json() == {"predictions": [[2.5]]}


@pytest.fixture(autouse=True, scope="module")
def _close_stubs():
    yield
    _STUBS.clear()
