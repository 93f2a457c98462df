"""Errors carrying an absl/TF status code, mapped to HTTP and gRPC exactly as TF Serving does,
and ``ExportError`` (publishing a version failed).

TFSERVING_CONTRACT.md §1.2 (``ToHTTPStatusCode``) for HTTP; gRPC uses the same code numbers.
"""
from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """``absl::StatusCode`` / ``tensorflow.error.Code`` (same numbers as ``grpc.StatusCode``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS = {
    Code.OK: 200, Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403, Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409, Code.OUT_OF_RANGE: 400, Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500, Code.UNAUTHENTICATED: 401,
}

MAX_MESSAGE = 1024


class ServingError(Exception):
    """A request failed with a status ``code`` and TF Serving's ``message``."""

    def __init__(self, code: Code, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = Code(code)
        self.message = message
        self._http_status = http_status  # a local limit's own status (413), else TF Serving's mapping

    @property
    def http_status(self) -> int:
        return self._http_status or HTTP_STATUS.get(self.code, 500)

    def to_string(self) -> str:
        """``absl::Status::ToString()``: ``CODE_NAME: message`` (used in nested errors)."""
        return f"{self.code.name}: {self.message}"

    def grpc_details(self) -> str:
        msg = self.message
        return msg if len(msg) <= MAX_MESSAGE else msg[:MAX_MESSAGE] + "...TRUNCATED"


def too_large(message: str) -> ServingError:
    """A request over one of the server's size limits: REST 413, gRPC RESOURCE_EXHAUSTED."""
    return ServingError(Code.RESOURCE_EXHAUSTED, message, http_status=413)


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def from_tf_error(err: Exception) -> ServingError:
    """A TensorFlow runtime error (``tf.errors.OpError``) keeps its code, as in TF Serving."""
    code = getattr(err, "error_code", None)
    message = getattr(err, "message", None) or str(err)
    try:
        return ServingError(Code(int(code)), message)
    except (TypeError, ValueError):
        # Python-side argument errors of a signature call (wrong dtype/shape) are bad input.
        return ServingError(Code.INVALID_ARGUMENT, message)


class ExportError(RuntimeError):
    """An export could not be written (or would overwrite a finished version)."""
