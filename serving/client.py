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

import base64
import random
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from serving.errors import Code, ServingError

class _Retry:
    def __init__(self, retries: int, backoff: float, max_backoff: float = 2.0):
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff

    def run(self, call: Callable[[], Any], retryable: Callable[[Exception], bool]):
        attempt = 0
        while True:
            try:
                return call()
            except Exception as err:  # noqa: BLE001 - filtered by ``retryable``
                if attempt >= self.retries or not retryable(err):
                    raise
                delay = min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                time.sleep(delay)
                attempt += 1


def _example_json(example: Mapping[str, Any]) -> dict:
    out = {}
    for key, value in example.items():
        values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        conv = []
        for v in values:
            if isinstance(v, bytes):
                conv.append({"b64": base64.b64encode(v).decode("ascii")})
            elif isinstance(v, (np.floating, float)):
                conv.append(float(v))
            elif isinstance(v, (np.integer, int)) and not isinstance(v, bool):
                conv.append(int(v))
            else:
                conv.append(v)
        out[key] = conv
    return out


def _to_example(example: Mapping[str, Any]):
    from tensorflow.core.example import example_pb2

    ex = example_pb2.Example()
    for key, value in example.items():
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        feat = ex.features.feature[key]
        first = values[0] if values else 0.0
        if isinstance(first, (str, bytes)):
            feat.bytes_list.value.extend(v.encode("utf-8") if isinstance(v, str) else v for v in values)
        elif isinstance(first, (float, np.floating)):
            feat.float_list.value.extend(float(v) for v in values)
        else:
            feat.int64_list.value.extend(int(v) for v in values)
    return ex


# ------------------------------------------------------------------------------------------------


class _Client:
    """What RestClient and GrpcClient share on top of their ``predict`` and ``status``."""

    model_name: str

    def _where(self) -> str:
        raise NotImplementedError

    def wait_until_ready(self, timeout: float = 60.0, poll: float = 0.2) -> list[dict[str, Any]]:
        """Block until the model has an AVAILABLE version (model status), or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                st = self.status()
                if any(v["state"] == "AVAILABLE" for v in st):
                    return st
            except Exception as err:  # noqa: BLE001 - not up yet, or still loading
                last = err
            time.sleep(poll)
        raise TimeoutError(f"model {self.model_name} not ready at {self._where()} after {timeout}s: {last}")


class RestClient(_Client):
    """TF Serving REST client (``requests``, keep-alive session)."""

    def __init__(self, base_url: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.1):
        import requests

        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self._retry = _Retry(retries, backoff)
        self._session = requests.Session()
        self._output_keys: dict[tuple, list[str]] = {}

    def _where(self) -> str:
        return self.base_url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "RestClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _model_path(self, version: int | None = None, label: str | None = None) -> str:
        from urllib.parse import quote

        path = f"{self.base_url}/v1/models/{quote(self.model_name, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label:
            path += f"/labels/{quote(label, safe='')}"
        return path

    def _request(self, method: str, url: str, body: Any = None) -> Any:
        import json

        import requests

        def call():
            data = None if body is None else json.dumps(body)
            resp = self._session.request(method, url, data=data, timeout=self.timeout,
                                         headers={"Content-Type": "application/json"})
            try:
                doc = resp.json()
            except ValueError:
                doc = {"error": resp.text}
            if resp.status_code != 200:
                raise ServingError(_code_from_http(resp.status_code), doc.get("error", resp.text)
                                   if isinstance(doc, dict) else resp.text)
            return doc

        def retryable(err: Exception) -> bool:
            if isinstance(err, ServingError):
                return err.code == Code.UNAVAILABLE
            return isinstance(err, requests.ConnectionError)

        return self._retry.run(call, retryable)

    # -- API ------------------------------------------------------------------------------------
    def predict(self, inputs: Mapping[str, Any], signature_name: str = "serving_default",
                version: int | None = None, label: str | None = None) -> dict[str, np.ndarray]:
        body = {"signature_name": signature_name,
                "inputs": {k: _to_json_value(np.asarray(v)) for k, v in inputs.items()}}
        doc = self._request("POST", self._model_path(version, label) + ":predict", body)
        outputs = doc["outputs"]
        if not isinstance(outputs, dict):
            keys = self._signature_outputs(signature_name, version, label)
            outputs = {keys[0]: outputs}
        return {k: _from_json_value(v) for k, v in outputs.items()}

    def _signature_outputs(self, signature_name: str, version, label) -> list[str]:
        key = (signature_name, version, label)
        if key not in self._output_keys:
            meta = self._request("GET", self._model_path(version, label) + "/metadata")
            sigs = meta["metadata"]["signature_def"]["signature_def"]
            self._output_keys[key] = sorted(sigs[signature_name or "serving_default"]["outputs"])
        return self._output_keys[key]

    def classify(self, examples: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                 signature_name: str = "serving_default", version: int | None = None,
                 label: str | None = None) -> list[list[tuple[str, float]]]:
        body: dict[str, Any] = {"signature_name": signature_name, "examples": [_example_json(e) for e in examples]}
        if context:
            body["context"] = _example_json(context)
        doc = self._request("POST", self._model_path(version, label) + ":classify", body)
        return [[(str(lbl), float(score)) for lbl, score in row] for row in doc["results"]]

    def regress(self, examples: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                signature_name: str = "serving_default", version: int | None = None,
                label: str | None = None) -> np.ndarray:
        body: dict[str, Any] = {"signature_name": signature_name, "examples": [_example_json(e) for e in examples]}
        if context:
            body["context"] = _example_json(context)
        doc = self._request("POST", self._model_path(version, label) + ":regress", body)
        return np.asarray(doc["results"], dtype=np.float32)

    def status(self, version: int | None = None) -> list[dict[str, Any]]:
        doc = self._request("GET", self._model_path(version))
        return [{"version": int(v["version"]), "state": v["state"],
                 "error_code": v.get("status", {}).get("error_code", "OK"),
                 "error_message": v.get("status", {}).get("error_message", "")}
                for v in doc["model_version_status"]]

    def metadata(self, version: int | None = None, label: str | None = None) -> dict[str, Any]:
        doc = self._request("GET", self._model_path(version, label) + "/metadata")
        sigs = doc["metadata"]["signature_def"]["signature_def"]
        return {k: {"inputs": {a: t["dtype"] for a, t in s.get("inputs", {}).items()},
                    "outputs": {a: t["dtype"] for a, t in s.get("outputs", {}).items()}}
                for k, s in sigs.items() if not k.startswith("__")}



def _code_from_http(status: int) -> Code:
    return {400: Code.INVALID_ARGUMENT, 401: Code.UNAUTHENTICATED, 403: Code.PERMISSION_DENIED,
            404: Code.NOT_FOUND, 409: Code.ABORTED, 413: Code.RESOURCE_EXHAUSTED, 429: Code.RESOURCE_EXHAUSTED,
            499: Code.CANCELLED, 501: Code.UNIMPLEMENTED, 503: Code.UNAVAILABLE,
            504: Code.DEADLINE_EXCEEDED}.get(status, Code.INTERNAL if status >= 500 else Code.UNKNOWN)


def _to_json_value(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "OSU":
        flat = [{"b64": base64.b64encode(v if isinstance(v, bytes) else str(v).encode("utf-8")).decode("ascii")}
                for v in arr.ravel()]
        return np.array(flat, dtype=object).reshape(arr.shape).tolist() if arr.ndim else flat[0]
    if arr.dtype.kind == "f":
        return arr.astype(np.float64).tolist()
    return arr.tolist()


def _from_json_value(value: Any) -> np.ndarray:
    """REST output → ndarray: strings become bytes (as over gRPC), numbers float32/int64."""
    probe = value
    while isinstance(probe, list) and probe:
        probe = probe[0]
    if isinstance(probe, (str, dict)):
        def conv(v):
            if isinstance(v, list):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return base64.b64decode(v["b64"])
            return v.encode("utf-8")
        nested = conv(value)
        arr = np.empty(np.shape(np.array(nested, dtype=object)), dtype=object)
        arr[...] = np.array(nested, dtype=object)
        return arr
    if isinstance(probe, bool):
        return np.asarray(value, dtype=bool)
    if isinstance(probe, float):
        return np.asarray(value, dtype=np.float32)
    arr = np.asarray(value)
    return arr.astype(np.float32) if arr.dtype.kind == "f" else arr


# ------------------------------------------------------------------------------------------------


class GrpcClient(_Client):
    """TF Serving gRPC client (``PredictionService`` / ``ModelService`` stubs)."""

    def __init__(self, target: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.1, max_message_bytes: int = 256 << 20):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.target, self.model_name, self.timeout = target, model_name, timeout
        self._retry = _Retry(retries, backoff)
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _where(self) -> str:
        return self.target

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GrpcClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spec(self, spec, signature_name: str | None = None, version: int | None = None,
              label: str | None = None) -> None:
        spec.name = self.model_name
        if signature_name is not None:
            spec.signature_name = signature_name
        if version is not None:
            spec.version.value = int(version)
        elif label:
            spec.version_label = label

    def _call(self, method, request):
        import grpc

        def call():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                code = err.code()
                raise ServingError(Code(code.value[0]), err.details() or "") from err

        return self._retry.run(call, lambda e: isinstance(e, ServingError) and e.code == Code.UNAVAILABLE)

    def predict(self, inputs: Mapping[str, Any], signature_name: str = "serving_default",
                version: int | None = None, label: str | None = None) -> dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        from serving.tensor_proto import ndarray_to_tensor_proto, tensor_proto_to_ndarray

        req = predict_pb2.PredictRequest()
        self._spec(req.model_spec, signature_name, version, label)
        for key, value in inputs.items():
            req.inputs[key].CopyFrom(ndarray_to_tensor_proto(np.asarray(value)))
        resp = self._call(self._predict.Predict, req)
        return {k: tensor_proto_to_ndarray(v) for k, v in resp.outputs.items()}

    def _input(self, inp, examples, context) -> None:
        if context:
            inp.example_list_with_context.context.CopyFrom(_to_example(context))
            for e in examples:
                inp.example_list_with_context.examples.add().CopyFrom(_to_example(e))
        else:
            for e in examples:
                inp.example_list.examples.add().CopyFrom(_to_example(e))

    def classify(self, examples: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                 signature_name: str = "serving_default", version: int | None = None,
                 label: str | None = None) -> list[list[tuple[str, float]]]:
        from tensorflow_serving.apis import classification_pb2

        req = classification_pb2.ClassificationRequest()
        self._spec(req.model_spec, signature_name, version, label)
        self._input(req.input, examples, context)
        resp = self._call(self._predict.Classify, req)
        return [[(c.label, c.score) for c in row.classes] for row in resp.result.classifications]

    def regress(self, examples: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None,
                signature_name: str = "serving_default", version: int | None = None,
                label: str | None = None) -> np.ndarray:
        from tensorflow_serving.apis import regression_pb2

        req = regression_pb2.RegressionRequest()
        self._spec(req.model_spec, signature_name, version, label)
        self._input(req.input, examples, context)
        resp = self._call(self._predict.Regress, req)
        return np.array([r.value for r in resp.result.regressions], dtype=np.float32)

    def status(self, version: int | None = None) -> list[dict[str, Any]]:
        from tensorflow_serving.apis import get_model_status_pb2

        from serving.errors import Code as C

        req = get_model_status_pb2.GetModelStatusRequest()
        self._spec(req.model_spec, None, version)
        resp = self._call(self._model.GetModelStatus, req)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": v.version, "state": states.Name(v.state),
                 "error_code": C(v.status.error_code).name, "error_message": v.status.error_message}
                for v in resp.model_version_status]

    def metadata(self, version: int | None = None, label: str | None = None) -> dict[str, Any]:
        from tensorflow.core.framework import types_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(req.model_spec, None, version, label)
        resp = self._call(self._predict.GetModelMetadata, req)
        sdm = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sdm)
        return {k: {"inputs": {a: types_pb2.DataType.Name(t.dtype) for a, t in s.inputs.items()},
                    "outputs": {a: types_pb2.DataType.Name(t.dtype) for a, t in s.outputs.items()}}
                for k, s in sdm.signature_def.items() if not k.startswith("__")}

