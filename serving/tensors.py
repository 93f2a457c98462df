"""Tensors in and out of TF Serving's wire formats: REST JSON (row / columnar) and TensorProto.

Rules and error messages follow TFSERVING_CONTRACT.md §1.6–1.7 (``json_tensor.cc``): element 0
decides the row mode, shapes come from the first child at each level, strict JSON-type checks
(bools are not numbers, ``1.0`` is not an int), ``{"b64": ...}`` for bytes, ``%g``/round-trip
float printing, ``NaN``/``Infinity`` as bare tokens, ``_bytes`` aliases emitted as b64.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Mapping

import numpy as np

from adpush_core.tfenv import import_tensorflow
from serving.errors import Code, ServingError, invalid
from serving.json_text import dbg, parse_json, string_bytes  # noqa: F401  (parse_json: REST's entry)

# DataType enum numbers (tensorflow/core/framework/types.proto); kept here so that the JSON
# code needs no TensorFlow import.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_COMPLEX64, DT_INT64, DT_BOOL = 8, 9, 10
DT_BFLOAT16, DT_UINT16, DT_COMPLEX128, DT_HALF = 14, 17, 18, 19
DT_UINT32, DT_UINT64 = 22, 23

NUMPY = {
    DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
    DT_INT16: np.int16, DT_INT8: np.int8, DT_STRING: object, DT_INT64: np.int64, DT_BOOL: np.bool_,
    DT_UINT16: np.uint16, DT_UINT32: np.uint32, DT_UINT64: np.uint64,
}
TYPE_NAME = {
    DT_FLOAT: "float", DT_DOUBLE: "double", DT_INT32: "int32", DT_UINT8: "uint8", DT_INT16: "int16",
    DT_INT8: "int8", DT_STRING: "string", DT_COMPLEX64: "complex64", DT_INT64: "int64",
    DT_BOOL: "bool", DT_BFLOAT16: "bfloat16", DT_UINT16: "uint16", DT_COMPLEX128: "complex128",
    DT_HALF: "half", DT_UINT32: "uint32", DT_UINT64: "uint64",
}
_NUMPY_TO_DT = {
    np.dtype(np.float32): DT_FLOAT, np.dtype(np.float64): DT_DOUBLE, np.dtype(np.int32): DT_INT32,
    np.dtype(np.uint8): DT_UINT8, np.dtype(np.int16): DT_INT16, np.dtype(np.int8): DT_INT8,
    np.dtype(np.int64): DT_INT64, np.dtype(np.bool_): DT_BOOL, np.dtype(np.uint16): DT_UINT16,
    np.dtype(np.uint32): DT_UINT32, np.dtype(np.uint64): DT_UINT64, np.dtype(np.float16): DT_HALF,
    np.dtype(np.complex64): DT_COMPLEX64, np.dtype(np.complex128): DT_COMPLEX128,
}
_INT_RANGE = {
    DT_INT32: (-2**31, 2**31 - 1), DT_INT16: (-2**31, 2**31 - 1), DT_INT8: (-2**31, 2**31 - 1),
    DT_UINT8: (-2**31, 2**31 - 1), DT_INT64: (-2**63, 2**63 - 1), DT_UINT32: (0, 2**32 - 1),
    DT_UINT64: (0, 2**64 - 1), DT_UINT16: (-2**31, 2**31 - 1),
}
_SUPPORTED = {DT_FLOAT, DT_DOUBLE, DT_STRING, DT_BOOL} | set(_INT_RANGE)


def type_name(dtype: int) -> str:
    return TYPE_NAME.get(dtype, f"type{dtype}")


def dtype_of_array(arr: np.ndarray) -> int:
    if arr.dtype.kind in "OSU":
        return DT_STRING
    return _NUMPY_TO_DT[arr.dtype]


# TF Serving fails a tensor of more than 254 dimensions (TensorShape::kMaxDimensions) with
# "tensor parsing error: <alias>" (Tensor::FromProto in GetInputValues); numpy, which carries the
# tensor here, stops at 64 dimensions, so deeper ones get the same 400 instead of a 500.
MAX_RANK = 64


class RankTooHigh(ServingError):
    """A JSON tensor nested deeper than TF allows; the caller names the input (GetInputValues:
    ``tensor parsing error: <alias>``)."""

    def __init__(self):
        super().__init__(Code.INVALID_ARGUMENT, "tensor parsing error")


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _convert(value: Any, dtype: int) -> Any:
    """One JSON leaf → a Python value of ``dtype`` (AddValueToTensor)."""
    if dtype == DT_FLOAT or dtype == DT_DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    elif dtype == DT_STRING:
        if isinstance(value, str):
            return string_bytes(value)
        if is_b64(value):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
    elif dtype == DT_BOOL:
        if isinstance(value, bool):
            return value
    elif dtype in _INT_RANGE:
        if isinstance(value, int) and not isinstance(value, bool):
            lo, hi = _INT_RANGE[dtype]
            if lo <= value <= hi:
                return value
    else:
        raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {dbg(value)} to type: {type_name(dtype)}")
    raise invalid(f"JSON Value: {dbg(value)} Type: {json_type(value)} is not of expected type: {type_name(dtype)}")


def _shape_of(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """A nested JSON list (or scalar / b64 object) → ndarray of ``dtype`` (FillTensorProto)."""
    if dtype not in _SUPPORTED:
        raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {dbg(value)} to type: {type_name(dtype)}")
    shape = _shape_of(value)
    rank = len(shape)
    if rank > MAX_RANK:
        raise RankTooHigh()
    dense = dense_array(value, dtype, shape)
    if dense is not None:
        return dense
    flat: list[Any] = []

    def walk(v: Any, level: int) -> None:
        if isinstance(v, list):
            if level >= rank:
                raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
            if len(v) != shape[level]:
                raise invalid(f"Encountered list at unexpected size: {len(v)} at level: {level} "
                              f"expected size: {shape[level]}")
            for child in v:
                walk(child, level + 1)
        else:
            if level != rank:
                raise invalid(f"JSON Value: {dbg(v)} found at incorrect level: {level + 1} in the JSON DOM. "
                              f"Expected at level: {rank}")
            flat.append(_convert(v, dtype))

    walk(value, 0)
    if dtype == DT_STRING:
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        return arr.reshape(shape)
    return np.asarray(flat, dtype=NUMPY[dtype]).reshape(shape)


_DENSE_MIN = 256     # smaller values take the per-leaf walk (no numpy set-up cost)
_DENSE_SLICE = 1 << 15


def dense_array(value: Any, dtype: int, shape: list[int]) -> np.ndarray | None:
    """A rectangular nested list whose leaves all have the right JSON type → ndarray, in slices of
    the first dimension (bounded GIL holds, a fraction of the per-leaf walk's time and memory);
    None for anything else, which then takes the walk and gets TF Serving's exact error."""
    if len(shape) < 1 or not shape[0] or int(np.prod(shape)) < _DENSE_MIN:
        return None
    out = np.empty(shape, dtype=NUMPY.get(dtype, object))
    for start in range(0, shape[0], _DENSE_SLICE):
        part = value[start:start + _DENSE_SLICE]
        try:
            objs = np.asarray(part, dtype=object) if len(shape) > 1 else np.array(part, dtype=object)
        except ValueError:
            return None
        if objs.shape != (len(part), *shape[1:]):
            return None
        leaves = objs.ravel().tolist()
        if dtype == DT_STRING:
            if not all(type(v) is str for v in leaves):
                return None
            out[start:start + len(part)] = np.array([string_bytes(v) for v in leaves], dtype=object).reshape(objs.shape)
            continue
        if dtype == DT_FLOAT or dtype == DT_DOUBLE:
            if not all(type(v) is float or type(v) is int for v in leaves):
                return None
        elif dtype == DT_BOOL:
            if not all(type(v) is bool for v in leaves):
                return None
        elif dtype in _INT_RANGE:
            lo, hi = _INT_RANGE[dtype]
            if not all(type(v) is int for v in leaves) or min(leaves) < lo or max(leaves) > hi:
                return None
        else:
            return None
        out[start:start + len(part)] = np.asarray(leaves, dtype=out.dtype).reshape(objs.shape)
    return out


def _shape_str(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def _stack(arrays: list[np.ndarray], dtype: int) -> np.ndarray:
    first = arrays[0]
    for arr in arrays[1:]:
        if arr.size != first.size:
            raise invalid(f"Expecting tensor size: {first.size} but got: {arr.size}")
        if arr.shape != first.shape:
            raise invalid(f"Expecting shape {_shape_str(first.shape)} but got: {_shape_str(arr.shape)}")
    return np.stack(arrays)


def parse_predict_body(doc: Any, input_dtypes: Mapping[str, int]) -> tuple[dict[str, np.ndarray], bool]:
    """A predict request body → (``{alias: ndarray}``, is_row_format) (FillTensorMapFrom*)."""
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid(f"JSON Value: {dbg(doc)} Not formatted correctly expecting only one of 'inputs' or "
                      "'instances' keys to exist ")
    if not has_instances and not has_inputs:
        raise invalid("Missing 'inputs' or 'instances' key")
    if has_instances:
        return _parse_instances(doc, input_dtypes), True
    return _parse_inputs(doc["inputs"], input_dtypes), False


def _scalar_column(values: list, dtype: int) -> np.ndarray | None:
    """JSON scalars of exactly the right JSON type → a 1-D array; None when any is not (then the
    general path runs and produces TF Serving's error). Same values as ``json_to_array``."""
    if dtype == DT_STRING:
        if all(type(v) is str for v in values):
            arr = np.empty(len(values), dtype=object)
            arr[:] = [string_bytes(v) for v in values]
            return arr
    elif dtype == DT_FLOAT or dtype == DT_DOUBLE:
        if all(type(v) is float or type(v) is int for v in values):
            return np.asarray(values, dtype=NUMPY[dtype])
    elif dtype == DT_BOOL:
        if all(type(v) is bool for v in values):
            return np.asarray(values, dtype=np.bool_)
    elif dtype in (DT_INT32, DT_INT64, DT_UINT32, DT_UINT64):   # TF Serving's range = numpy's
        lo, hi = _INT_RANGE[dtype]
        if all(type(v) is int and lo <= v <= hi for v in values):
            return np.asarray(values, dtype=NUMPY[dtype])
    return None


def _fast_instances(instances: list, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray] | None:
    """The common row format (one scalar per input per instance) without the per-leaf walk and
    ``np.stack`` of the general path (a third of the REST handler's time in the profile)."""
    first = instances[0]
    if type(first) is dict and not is_b64(first):
        columns: dict[str, list] = {k: [] for k in input_dtypes}
        n = len(columns)
        for item in instances:
            if type(item) is not dict or len(item) != n:
                return None
            for key, value in item.items():
                column = columns.get(key)
                if column is None:
                    return None
                column.append(value)
    elif len(input_dtypes) == 1 and type(first) is not list and type(first) is not dict:
        columns = {next(iter(input_dtypes)): instances}
    else:
        return None
    out = {}
    for key, values in columns.items():
        arr = _scalar_column(values, input_dtypes[key])
        if arr is None:
            return None
        out[key] = arr
    return out


def _parse_instances(doc: Any, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    instances = doc["instances"]
    if not isinstance(instances, list):
        raise invalid(f"JSON Value: {dbg(doc)} Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid(f"JSON Value: {dbg(doc)} No values in 'instances' array")
    fast = _fast_instances(instances, input_dtypes)
    if fast is not None:
        return fast
    try:
        dense = _dense_instances(instances, input_dtypes)
    except RankTooHigh:
        dense = None  # the walk below names the input
    if dense is not None:
        return dense
    named = isinstance(instances[0], dict) and not is_b64(instances[0])
    if not named:
        if len(input_dtypes) != 1:
            raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                          "required as per tensorinfo_map")
        (alias, dtype), = input_dtypes.items()
        if len(_shape_of(instances)) > MAX_RANK:
            raise invalid(f"tensor parsing error: {alias}")
        arrays = []
        for i, item in enumerate(instances):
            if isinstance(item, dict) and not is_b64(item):
                raise invalid(f"Expecting value/list but got object at item {i} of input list")
            try:
                arrays.append(json_to_array(item, dtype))
            except RankTooHigh:
                raise invalid(f"tensor parsing error: {alias}") from None
            except ServingError as err:
                raise ServingError(err.code, f"Failed to process element: {i} of 'instances' list. "
                                   f"Error: {err.to_string()}") from None
        try:
            return {alias: _stack(arrays, dtype)}
        except ServingError as err:
            raise ServingError(err.code, f"Failed to process element: {len(arrays) - 1} of 'instances' list. "
                               f"Error: {err.to_string()}") from None
    expected = ",".join(sorted(input_dtypes))
    per_input: dict[str, list[np.ndarray]] = {k: [] for k in input_dtypes}
    for i, item in enumerate(instances):
        if not isinstance(item, dict) or is_b64(item):
            raise invalid(f"Expecting object but got {'list' if isinstance(item, list) else 'value'} "
                          f"at item {i} of input list")
        for key, value in item.items():
            if key not in input_dtypes:
                raise invalid(f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                              f"INVALID_ARGUMENT: JSON object: does not have named input: {key}")
            try:
                per_input[key].append(json_to_array(value, input_dtypes[key]))
            except RankTooHigh:
                raise invalid(f"tensor parsing error: {key}") from None
            except ServingError as err:
                raise ServingError(err.code, f"Failed to process element: {i} key: {key} of 'instances' list. "
                                   f"Error: {err.to_string()}") from None
        if set(item) != set(input_dtypes):
            raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object: {dbg(item)} "
                          f"keys must be equal to: {expected}")
    out = {}
    for key, arrays in per_input.items():
        try:
            out[key] = _stack(arrays, input_dtypes[key])
        except ServingError as err:
            raise ServingError(err.code, f"Failed to process element: {len(arrays) - 1} key: {key} of "
                               f"'instances' list. Error: {err.to_string()}") from None
    return out


def _parse_inputs(inputs: Any, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(inputs, dict) or is_b64(inputs):
        if len(input_dtypes) != 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        (alias, dtype), = input_dtypes.items()
        return {alias: _input_array(inputs, dtype, alias)}
    out = {}
    for alias, dtype in sorted(input_dtypes.items()):
        if alias not in inputs:
            raise invalid(f"Missing named input: {alias} in 'inputs' object.")
        out[alias] = _input_array(inputs[alias], dtype, alias)
    return out


def _input_array(value: Any, dtype: int, alias: str) -> np.ndarray:
    try:
        return json_to_array(value, dtype)
    except RankTooHigh:
        raise invalid(f"tensor parsing error: {alias}") from None


def _dense_instances(instances: list, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray] | None:
    """Many instances of nested lists (value mode) or of objects of them (named mode), every leaf
    of the right type: one dense array per input, without a per-instance walk and ``np.stack``
    (at main a 20 MB request took 14 s and 60 MB over 5 minutes there). None when anything is
    irregular: the general path then produces TF Serving's errors in TF Serving's order."""
    if len(instances) < _DENSE_MIN:
        return None
    first = instances[0]
    if type(first) is list and len(input_dtypes) == 1:
        (alias, dtype), = input_dtypes.items()
        arr = dense_array(instances, dtype, _shape_of(instances))
        return None if arr is None else {alias: arr}
    if type(first) is not dict or is_b64(first):
        return None
    n = len(input_dtypes)
    if not all(type(item) is dict and len(item) == n for item in instances):
        return None
    out = {}
    for key, dtype in input_dtypes.items():
        try:
            column = [item[key] for item in instances]
        except KeyError:
            return None
        arr = dense_array(column, dtype, _shape_of(column))
        if arr is None:
            return None
        out[key] = arr
    return out


# --------------------------------------------------------------------------------------------
# JSON writing (MakeJsonFromTensors / WriteDecimal)


def format_float(value: float, f32: bool = True) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    s = "%g" % value
    if f32:
        if np.float32(float(s)) != np.float32(value):
            s = "%.9g" % value
    elif float(s) != value:
        s = "%.17g" % value
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def _leaf_writer(dtype: int, as_b64: bool, alias: str):
    if dtype in (DT_FLOAT, DT_DOUBLE):
        f32 = dtype == DT_FLOAT

        def write_float(v):  # the name tells _write_nested_vectorized it may format in bulk
            return format_float(float(v), f32)

        return write_float
    if dtype == DT_BOOL:
        return lambda v: "true" if v else "false"
    if dtype in _INT_RANGE:
        return lambda v: str(int(v))
    if dtype == DT_STRING:
        if as_b64:
            return lambda v: '{"b64": "' + base64.b64encode(bytes(v)).decode("ascii") + '"}'
        # the bytes as they are (TF Serving writes them unvalidated); the response is encoded
        # with surrogateescape, so invalid UTF-8 is not rewritten to U+FFFD
        return lambda v: json.dumps(v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v),
                                    ensure_ascii=False)
    raise invalid(f"Failed to write JSON value for tensor type: {type_name(dtype)}")


def _write_nested(arr: np.ndarray, leaf) -> str:
    if not isinstance(arr, np.ndarray):
        return leaf(arr)
    if arr.ndim == 0:
        return leaf(arr.item() if arr.dtype != object else arr[()])
    if arr.size >= _VECTOR_MIN and all(arr.shape):
        return _write_nested_vectorized(arr, leaf)
    if arr.ndim == 1:
        return "[" + ", ".join(leaf(v) for v in (arr.tolist() if arr.dtype != object else arr)) + "]"
    return "[" + ", ".join(_write_nested(sub, leaf) for sub in arr) + "]"


_VECTOR_MIN = 1024


def format_floats(values: np.ndarray) -> list[str]:
    """``format_float`` of every element of a float32/float64 array, with the round-trip check
    done by numpy for a slice at a time (the per-value check cost 3 µs: most of a large
    response's time; slices keep each C call, which holds the GIL, to a few ms)."""
    flat = values.ravel()
    out: list[str] = []
    for start in range(0, flat.size, _FORMAT_SLICE):
        out += _format_float_slice(flat[start:start + _FORMAT_SLICE])
    return out


_FORMAT_SLICE = 1 << 15


def _format_float_slice(flat: np.ndarray) -> list[str]:
    f32 = flat.dtype == np.float32
    py = flat.tolist()
    out = ["%g" % v for v in py]
    finite = np.isfinite(flat)
    back = np.array(out, dtype=np.float64)
    same = (back.astype(np.float32) == flat) if f32 else (back == flat)
    wide = "%.9g" if f32 else "%.17g"
    for i in np.flatnonzero(~same & finite).tolist():
        out[i] = wide % py[i]
    out = [t if ("." in t or "e" in t) else t + ".0" for t in out]
    for i in np.flatnonzero(~finite).tolist():
        v = py[i]
        out[i] = "NaN" if v != v else ("-Infinity" if v < 0 else "Infinity")
    return out


def _write_nested_vectorized(arr: np.ndarray, leaf) -> str:
    """The same text as the recursive writer, built from the flat leaf strings innermost
    dimension first."""
    if arr.dtype in (np.float32, np.float64) and leaf.__name__ == "write_float":
        parts = format_floats(arr)
    else:
        parts = [leaf(v) for v in (arr.ravel().tolist() if arr.dtype != object else arr.ravel())]
    for size in reversed(arr.shape):
        if size > _FORMAT_SLICE:  # one join of millions of strings holds the GIL for ~0.1 s
            parts = ["[" + ", ".join(", ".join(parts[j:j + _FORMAT_SLICE])
                                     for j in range(i, i + size, _FORMAT_SLICE)) + "]"
                     for i in range(0, len(parts), size)]
        else:
            parts = ["[" + ", ".join(parts[i:i + size]) + "]" for i in range(0, len(parts), size)]
    return parts[0]


def _writer_for(alias: str, arr: np.ndarray):
    dtype = dtype_of_array(arr)
    return _leaf_writer(dtype, alias.endswith("_bytes") and dtype == DT_STRING, alias)


def make_predict_json(outputs: Mapping[str, np.ndarray], row: bool) -> str:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar)."""
    writers = {alias: _writer_for(alias, arr) for alias, arr in outputs.items()}
    if not row:
        if len(outputs) == 1:
            (alias, arr), = outputs.items()
            return '{"outputs": ' + _write_nested(arr, writers[alias]) + "}"
        parts = [json.dumps(alias) + ": " + _write_nested(arr, writers[alias]) for alias, arr in outputs.items()]
        return '{"outputs": {' + ", ".join(parts) + "}}"
    batch = None
    first = None
    for alias, arr in outputs.items():
        if arr.ndim == 0:
            raise invalid(f"Tensor name: {alias} has no shape information ")
        if batch is None:
            batch, first = arr.shape[0], alias
        elif arr.shape[0] != batch:
            raise invalid(f"Tensor name: {alias} has inconsistent batch size: {arr.shape[0]} expecting: {batch}")
    if len(outputs) == 1:
        (alias, arr), = outputs.items()
        return '{"predictions": ' + _write_nested(arr, writers[alias]) + "}"
    rows = []
    for i in range(batch or 0):
        rows.append("{" + ", ".join(json.dumps(alias) + ": " + _write_nested(arr[i], writers[alias])
                                    for alias, arr in outputs.items()) + "}")
    return '{"predictions": [' + ", ".join(rows) + "]}"


def make_classify_json(results: list[list[tuple[str, float]]]) -> str:
    if not results:
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classes in results:
        rows.append("[" + ", ".join("[" + json.dumps(label) + ", " + format_float(score) + "]"
                                    for label, score in classes) + "]")
    return '{"results": [' + ", ".join(rows) + "]}"


def make_regress_json(values: list[float]) -> str:
    if not values:
        raise invalid("Cannot convert empty RegressionResults to JSON")
    return '{"results": [' + ", ".join(format_float(v) for v in values) + "]}"


def error_json(message: str) -> str:
    return json.dumps({"error": message}, indent=4, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Classify/regress JSON → tf.Example bytes (FillClassifyRegressRequestFromJson)


def _feature_from_json(name: str, value: Any):
    from tensorflow.core.example import feature_pb2

    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    kind = None
    for v in values:
        if isinstance(v, bool) or (isinstance(v, int)):
            if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
                raise invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
            this = "int64"
        elif isinstance(v, float):
            this = "float"
        elif isinstance(v, str) or is_b64(v):
            this = "bytes"
        else:
            raise invalid(f"Feature: {name} has element with unexpected JSON type: {json_type(v)}")
        if kind is None:
            kind = this
        elif kind != this:
            raise invalid(f"Unexpected element type in feature: {name} expecting type: {kind}")
        if this == "int64":
            feature.int64_list.value.append(int(v))
        elif this == "float":
            feature.float_list.value.append(v)
        elif isinstance(v, str):
            feature.bytes_list.value.append(string_bytes(v))
        else:
            try:
                feature.bytes_list.value.append(base64.b64decode(v["b64"], validate=True))
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
    return feature


def _example_from_json(obj: Any) -> bytes:
    from tensorflow.core.example import example_pb2

    if not isinstance(obj, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(obj)}")
    example = example_pb2.Example()
    for name, value in obj.items():
        example.features.feature[name].CopyFrom(_feature_from_json(name, value))
    return example.SerializeToString()


def parse_examples_body(doc: Any) -> list[bytes]:
    """A classify/regress body → serialized tf.Examples (context bytes + example bytes)."""
    context = b""
    if "context" in doc:
        context = _example_from_json(doc["context"])
    if "examples" not in doc:
        raise invalid(f"JSON Value: {dbg(doc)} When method is classify, key 'examples' is expected and was not found")
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {dbg(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {dbg(doc)} 'examples' value is an empty array")
    return [context + _example_from_json(e) for e in examples]


# --------------------------------------------------------------------------------------------
# TensorProto ⇄ ndarray (typed ``*_val`` fields, as the real server writes them)


def ndarray_to_tensor_proto(arr: np.ndarray, proto=None):
    """``arr`` as a TensorProto with typed ``*_val`` fields (as TF Serving writes outputs), filled
    into ``proto`` when given (e.g. ``response.outputs[alias]``: no copy), else a new one."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "U":
        arr = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(arr) if arr.size else arr.astype(object)
    dtype = dtype_of_array(arr)
    if proto is None:
        from tensorflow.core.framework import tensor_pb2

        proto = tensor_pb2.TensorProto()
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for d in arr.shape:
        dims.add().size = int(d)
    field = _WRITE_FIELDS.get(dtype)
    if field is not None:
        getattr(proto, field).extend(arr.ravel().tolist())
    elif dtype == DT_STRING:
        proto.string_val.extend([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in arr.ravel()])
    else:
        proto.tensor_content = arr.tobytes()
    return proto


_WRITE_FIELDS = {DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val", DT_INT16: "int_val",
                 DT_INT8: "int_val", DT_UINT8: "int_val", DT_UINT16: "int_val", DT_INT64: "int64_val",
                 DT_UINT32: "uint32_val", DT_UINT64: "uint64_val", DT_BOOL: "bool_val"}


# dtype -> (typed field, numpy dtype) for the protos ``tensor_proto_to_ndarray`` decodes itself
_VALUE_FIELDS = {
    DT_FLOAT: ("float_val", np.float32), DT_DOUBLE: ("double_val", np.float64), DT_INT32: ("int_val", np.int32),
    DT_INT64: ("int64_val", np.int64), DT_BOOL: ("bool_val", np.bool_), DT_STRING: ("string_val", object),
}
_CONTENT_DTYPES = {dt: np.dtype(t) for dt, t in NUMPY.items() if dt != DT_STRING}


def tensor_proto_to_ndarray(proto, shape: list[int] | None = None) -> np.ndarray:
    """``tf.make_ndarray(proto)``, with the common protos decoded here: a typed ``*_val`` field
    holding exactly one value per element, or a ``tensor_content`` of exactly the shape's bytes.
    ``make_ndarray`` spends ~6 µs a tensor in dtype and shape bookkeeping (a third of a small
    gRPC Predict's server time); everything else (short fields it repeats, half floats, empty
    tensors, malformed protos and their errors) still goes to ``make_ndarray``. ``shape``: the
    proto's dimensions when the caller has read them already."""
    dtype = proto.dtype
    if shape is None:
        shape = [d.size for d in proto.tensor_shape.dim]
    n = 1
    for d in shape:
        n *= d
    if n > 0:
        content = proto.tensor_content
        if content:
            np_dtype = _CONTENT_DTYPES.get(dtype)
            if np_dtype is not None and len(content) == n * np_dtype.itemsize:
                return np.frombuffer(content, dtype=np_dtype).copy().reshape(shape)
        else:
            field = _VALUE_FIELDS.get(dtype)
            if field is not None:
                values = getattr(proto, field[0])
                if len(values) == n:
                    return np.array(values, dtype=field[1]).reshape(shape) if field[1] is not object \
                        else _object_array(values, shape)
    tf = import_tensorflow()

    return tf.make_ndarray(proto)


def _object_array(values, shape) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr.reshape(shape)
