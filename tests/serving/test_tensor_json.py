"""serving.json_request, json_response, example_json, tensor_proto: TF Serving's JSON rules,
checked against json_tensor_test.cc examples."""
from __future__ import annotations

import numpy as np
import pytest

from serving import dtypes as dt
from serving import example_json, json_request, json_response, json_text, tensor_proto
from serving.errors import Code, ServingError


@pytest.mark.parametrize("value, text", [
    (9000000, "9e+06"), (999999, "999999.0"), (0.5, "0.5"), (0.0003, "0.0003"), (0.00003, "3e-05"),
    (555557.5, "555557.5"), (3.0, "3.0"), (0.1, "0.1"), (1435774380, "1.43577434e+09"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")])
def test_float32_printing(value, text):
    assert json_response.format_float(float(np.float32(value))) == text


def test_parse_json_rapidjson_quirks():
    assert json_text.parse_json(b'{"a": 1, "a": 2}') == {"a": 1}          # first duplicate wins
    assert json_text.parse_json(b'{"a": 1} trailing') == {"a": 1}         # trailing bytes ignored
    assert np.isnan(json_text.parse_json(b'{"a": NaN}')["a"])
    with pytest.raises(ServingError, match="The document is empty"):
        json_text.parse_json(b"  ")
    with pytest.raises(ServingError, match="Invalid value. at offset: 0"):
        json_text.parse_json(b"instances = [1, 2]")


def test_row_format_shapes_and_errors():
    dtypes = {"x": dt.DT_FLOAT}
    inputs, row = json_request.parse_predict_body({"instances": [[1, 2], [3, 4.5]]}, dtypes)
    assert row and inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [[1, 2], [3, 4.5]]
    with pytest.raises(ServingError, match="Expecting tensor size: 2 but got: 1"):
        json_request.parse_predict_body({"instances": [[1, 2], [3]]}, dtypes)
    with pytest.raises(ServingError, match="Encountered list at unexpected size: 1 at level: 1 expected size: 2"):
        json_request.parse_predict_body({"instances": [[[1, 2], [3]]]}, dtypes)
    with pytest.raises(ServingError, match="No values in 'instances' array"):
        json_request.parse_predict_body({"instances": []}, dtypes)
    with pytest.raises(ServingError, match="Missing 'inputs' or 'instances' key"):
        json_request.parse_predict_body({}, dtypes)
    with pytest.raises(ServingError, match="expecting only one of 'inputs' or 'instances' keys to exist "):
        json_request.parse_predict_body({"inputs": [1], "instances": [1]}, dtypes)


def test_strict_types():
    with pytest.raises(ServingError, match="Type: True is not of expected type: float"):
        json_request.json_to_array([True], dt.DT_FLOAT)
    with pytest.raises(ServingError, match="Type: Number is not of expected type: int32"):
        json_request.json_to_array([1.0], dt.DT_INT32)
    with pytest.raises(ServingError, match="Type: Number is not of expected type: bool"):
        json_request.json_to_array([1], dt.DT_BOOL)
    with pytest.raises(ServingError) as err:
        json_request.json_to_array([1.0], dt.DT_HALF)
    assert err.value.code == Code.UNIMPLEMENTED and err.value.http_status == 501
    assert json_request.json_to_array([{"b64": "aGVsbG8="}], dt.DT_STRING).tolist() == [b"hello"]
    with pytest.raises(ServingError, match="Unable to base64 decode"):
        json_request.json_to_array({"b64": "!!"}, dt.DT_STRING)


def test_named_rows_need_exactly_the_signature_keys_and_columnar_ignores_extras():
    dtypes = {"a": dt.DT_INT64, "b": dt.DT_STRING}
    with pytest.raises(ServingError, match="keys must be equal to: a,b"):
        json_request.parse_predict_body({"instances": [{"a": 1}]}, dtypes)
    with pytest.raises(ServingError, match="does not have named input: c"):
        json_request.parse_predict_body({"instances": [{"a": 1, "b": "x", "c": 2}]}, dtypes)
    inputs, row = json_request.parse_predict_body({"inputs": {"a": [1, 2], "b": "x", "c": 9}}, dtypes)
    assert not row and inputs["a"].tolist() == [1, 2] and inputs["b"].shape == ()
    with pytest.raises(ServingError, match="Missing named input: b in 'inputs' object."):
        json_request.parse_predict_body({"inputs": {"a": [1]}}, dtypes)


def test_response_formats():
    y = np.array([2.5, 3.0], np.float32)
    assert json_response.make_predict_json({"y": y}, row=True) == '{"predictions": [2.5, 3.0]}'
    assert json_response.make_predict_json({"y": y}, row=False) == '{"outputs": [2.5, 3.0]}'
    two = json_text.parse_json(json_response.make_predict_json({"y": y, "k": np.array([b"a", b"b"], object)}, row=True))
    assert two == {"predictions": [{"y": 2.5, "k": "a"}, {"y": 3.0, "k": "b"}]}
    assert json_response.make_predict_json({"img_bytes": np.array([b"\x00\x01"], object)}, row=False) == \
        '{"outputs": [{"b64": "AAE="}]}'
    with pytest.raises(ServingError, match="inconsistent batch size: 1 expecting: 2"):
        json_response.make_predict_json({"y": y, "z": np.array([1.0], np.float32)}, row=True)
    assert json_response.make_regress_json([42.0]) == '{"results": [42.0]}'
    assert json_response.make_classify_json([[("", 42.0)]]) == '{"results": [[["", 42.0]]]}'


def test_examples_from_json_follow_int_vs_float_and_context_merge():
    from tensorflow.core.example import example_pb2

    serialized = example_json.parse_examples_body({"context": {"c": "ctx", "x": 1},
                                        "examples": [{"x": 80}, {"x": 80.0, "s": [{"b64": "aGk="}]}]})
    first, second = (example_pb2.Example.FromString(s) for s in serialized)
    assert list(first.features.feature["x"].int64_list.value) == [80]          # example wins
    assert list(first.features.feature["c"].bytes_list.value) == [b"ctx"]      # context merged
    assert list(second.features.feature["x"].float_list.value) == [80.0]
    assert list(second.features.feature["s"].bytes_list.value) == [b"hi"]
    with pytest.raises(ServingError, match="'examples' value is an empty array"):
        example_json.parse_examples_body({"examples": []})
    with pytest.raises(ServingError, match="Unexpected element type in feature: x expecting type: int64"):
        example_json.parse_examples_body({"examples": [{"x": [1, 2.0]}]})


@pytest.mark.parametrize("doc, dtypes", [
    ({"instances": [{"a": "x", "b": 1}, {"a": "y", "b": 2}]}, {"a": 7, "b": 9}),
    ({"instances": [{"a": "x", "b": 1.5}]}, {"a": 7, "b": 9}),
    ({"instances": [{"a": "x", "b": True}]}, {"a": 7, "b": 10}),
    ({"instances": [{"a": "x"}]}, {"a": 7, "b": 9}),
    ({"instances": [{"a": "x", "b": 1, "c": 2}]}, {"a": 7, "b": 9}),
    ({"instances": [1.0, 2, 3.5]}, {"x": 1}),
    ({"instances": [1, 2]}, {"x": 3}),
    ({"instances": [{"b64": "aGk="}]}, {"b64": 7}),
    ({"instances": [{"b64": "aGk="}]}, {"x": 7}),
    ({"instances": [True, 1]}, {"x": 10}),
    ({"instances": [1, True]}, {"x": 1}),
    ({"instances": [{"a": [1, 2]}, {"a": [3, 4]}]}, {"a": 9}),
    ({"instances": [{"a": 1}, {"a": "x"}]}, {"a": 9}),
    ({"instances": [2**63]}, {"x": 9}),
    ({"instances": [2**64 - 1]}, {"x": 23}),
    ({"instances": [-1]}, {"x": 22}),
    ({"instances": [1, 2]}, {"x": 2}),
    ({"instances": [{"a": "é"}]}, {"a": 7}),
])
def test_scalar_row_fast_path_equals_the_general_path(doc, dtypes, monkeypatch):
    def parse():
        try:
            out, row = json_request.parse_predict_body(doc, dtypes)
            return row, [(k, v.dtype.str, v.shape, v.tolist()) for k, v in out.items()]
        except ServingError as err:
            return err.code, err.message

    fast = parse()
    monkeypatch.setattr(json_request, "_fast_instances", lambda *a: None)
    assert fast == parse()


def _proto(dtype, dims, **fields):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]), **fields)


@pytest.mark.parametrize("proto", [
    _proto(dt.DT_STRING, [2], string_val=[b"a", b"\xff"]),
    _proto(dt.DT_INT64, [2, 1], int64_val=[13, -1]),
    _proto(dt.DT_FLOAT, [3], float_val=[0.5]),                       # short: make_ndarray repeats it
    _proto(dt.DT_FLOAT, [2, 2], tensor_content=np.arange(4, dtype=np.float32).tobytes()),
    _proto(dt.DT_BOOL, [1], bool_val=[True]),
    _proto(dt.DT_INT32, [0], int_val=[]),
])
@pytest.mark.parametrize("read_shape", [False, True])
def test_tensor_proto_decoding_equals_make_ndarray(proto, read_shape):
    import tensorflow as tf

    shape = [d.size for d in proto.tensor_shape.dim] if read_shape else None
    got, want = tensor_proto.tensor_proto_to_ndarray(proto, shape), tf.make_ndarray(proto)
    assert (got.dtype, got.shape, got.tolist()) == (want.dtype, want.shape, want.tolist())
