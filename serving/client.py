"""Clients for TensorFlow Serving (real or the local server): ``RestClient`` and ``GrpcClient``.

Both have one API and return numpy arrays:

* ``predict(inputs, signature_name=..., version=..., label=...)`` → ``{alias: ndarray}``
* ``classify(examples, context=None, signature_name=...)`` → ``[[(label, score), ...], ...]``
* ``regress(examples, context=None, signature_name=...)`` → ``ndarray`` [n_examples]
* ``status(version=None)`` → ``[{"version": int, "state": str, "error_code": str, "error_message": str}]``
* ``metadata()`` → ``{signature_key: {"inputs": {alias: dtype}, "outputs": {alias: dtype}}}``
* ``wait_until_ready(timeout)``

They use only what real TF Serving offers (REST columnar format with ``{"b64"}`` strings; the
gRPC messages of tensorflow-serving-api), so they work unchanged against ``tensorflow/serving``.
UNAVAILABLE / HTTP 503 (and connection failures) are retried with exponential backoff; every
call has a timeout.
"""
from __future__ import annotations

from serving.grpc_client import GrpcClient
from serving.rest_client import RestClient

__all__ = ["GrpcClient", "RestClient"]
