"""Arrays → REST response JSON, as TF Serving writes it (MakeJsonFromTensors / WriteDecimal):
``%g``/round-trip float printing, ``NaN``/``Infinity`` as bare tokens, ``_bytes`` aliases emitted
as b64."""
from __future__ import annotations

import base64
import json
import math
from typing import Mapping

import numpy as np

from serving.dtypes import (DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_STRING, INT_RANGE, dtype_of_array,
                            type_name)
from serving.errors import invalid


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
    if dtype in INT_RANGE:
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
