"""REST request bodies → arrays, as TF Serving parses them (``json_tensor.cc``).

Rules and error messages follow TFSERVING_CONTRACT.md §1.6–1.7: element 0 decides the row
mode, shapes come from the first child at each level, strict JSON-type checks (bools are not
numbers, ``1.0`` is not an int), ``{"b64": ...}`` for bytes. ``parse_json`` (serving.json_text)
is REST's entry for the body itself."""
from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

import numpy as np

from serving.dtypes import (DT_BOOL, DT_DOUBLE, DT_FLOAT, DT_INT32, DT_INT64, DT_STRING,
                            DT_UINT32, DT_UINT64, INT_RANGE, NUMPY, SUPPORTED, type_name)
from serving.errors import Code, ServingError, invalid
from serving.json_text import dbg, string_bytes


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
    elif dtype in INT_RANGE:
        if isinstance(value, int) and not isinstance(value, bool):
            lo, hi = INT_RANGE[dtype]
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
    if dtype not in SUPPORTED:
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
        elif dtype in INT_RANGE:
            lo, hi = INT_RANGE[dtype]
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
        lo, hi = INT_RANGE[dtype]
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
