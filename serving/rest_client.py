"""``RestClient``: TF Serving's REST API (columnar ``inputs`` with ``{"b64"}`` strings, keep-alive
``requests`` session), returning numpy arrays."""
from __future__ import annotations

import base64
from typing import Any, Mapping, Sequence

import numpy as np

from serving.client_base import Client, Retry
from serving.errors import Code, ServingError


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


class RestClient(Client):
    """TF Serving REST client (``requests``, keep-alive session)."""

    def __init__(self, base_url: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.1):
        import requests

        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self._retry = Retry(retries, backoff)
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
