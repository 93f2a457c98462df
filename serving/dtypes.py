"""TensorFlow DataType numbers (tensorflow/core/framework/types.proto) ⇄ numpy, kept here so that
the JSON code needs no TensorFlow import."""
from __future__ import annotations

import numpy as np

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
NUMPY_TO_DT = {
    np.dtype(np.float32): DT_FLOAT, np.dtype(np.float64): DT_DOUBLE, np.dtype(np.int32): DT_INT32,
    np.dtype(np.uint8): DT_UINT8, np.dtype(np.int16): DT_INT16, np.dtype(np.int8): DT_INT8,
    np.dtype(np.int64): DT_INT64, np.dtype(np.bool_): DT_BOOL, np.dtype(np.uint16): DT_UINT16,
    np.dtype(np.uint32): DT_UINT32, np.dtype(np.uint64): DT_UINT64, np.dtype(np.float16): DT_HALF,
    np.dtype(np.complex64): DT_COMPLEX64, np.dtype(np.complex128): DT_COMPLEX128,
}
INT_RANGE = {
    DT_INT32: (-2**31, 2**31 - 1), DT_INT16: (-2**31, 2**31 - 1), DT_INT8: (-2**31, 2**31 - 1),
    DT_UINT8: (-2**31, 2**31 - 1), DT_INT64: (-2**63, 2**63 - 1), DT_UINT32: (0, 2**32 - 1),
    DT_UINT64: (0, 2**64 - 1), DT_UINT16: (-2**31, 2**31 - 1),
}
SUPPORTED = {DT_FLOAT, DT_DOUBLE, DT_STRING, DT_BOOL} | set(INT_RANGE)


def type_name(dtype: int) -> str:
    return TYPE_NAME.get(dtype, f"type{dtype}")


def dtype_of_array(arr: np.ndarray) -> int:
    if arr.dtype.kind in "OSU":
        return DT_STRING
    return NUMPY_TO_DT[arr.dtype]
