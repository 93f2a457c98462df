"""The shared serving round trip every model family goes through (STYLE.md: one harness).

``check_serving_roundtrip`` serves an exported version with the local server and checks that
REST row format, REST columnar format and gRPC all return the in-process numbers (1e-6)::

    path = export_saved_model(module, signatures, base, "sp")
    expected = {k: v.numpy() for k, v in signatures["serving_default"](**tensors).items()}
    check_serving_roundtrip(path, "serving_default", inputs, expected)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def _row_value(value: np.ndarray | Any) -> Any:
    from serving.client import _to_json_value

    return _to_json_value(np.asarray(value))


def check_serving_roundtrip(export_dir: str | Path, signature_name: str, inputs: Mapping[str, np.ndarray],
                            expected: Mapping[str, np.ndarray], atol: float = 1e-6) -> dict[str, dict]:
    """Serve ``export_dir`` (``BASE/NAME/<version>``) and compare REST row, REST columnar and
    gRPC outputs of ``signature_name`` with ``expected``; raises AssertionError on a mismatch.

    Returns the three output dicts (``{"rest_row", "rest_columnar", "grpc"}``).
    """
    import requests

    from serving.client import GrpcClient, RestClient, _from_json_value
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    export_dir = Path(export_dir)
    name = export_dir.parent.name
    config = ModelConfig(name, str(export_dir.parent), policy="specific", versions=(int(export_dir.name),))
    results: dict[str, dict] = {}
    with ModelServer([config], file_system_poll_wait_seconds=0) as server:
        rest = RestClient(f"http://127.0.0.1:{server.rest_api_port}", name)
        grpc_client = GrpcClient(f"127.0.0.1:{server.port}", name)
        try:
            results["rest_columnar"] = rest.predict(inputs, signature_name)
            results["grpc"] = grpc_client.predict(inputs, signature_name)
            n = len(next(iter(inputs.values())))
            instances = [{k: _row_value(np.asarray(v)[i]) for k, v in inputs.items()} for i in range(n)]
            if len(inputs) == 1:
                instances = [next(iter(inst.values())) for inst in instances]
            resp = requests.post(f"http://127.0.0.1:{server.rest_api_port}/v1/models/{name}:predict",
                                 data=json.dumps({"signature_name": signature_name, "instances": instances}),
                                 timeout=30)
            assert resp.status_code == 200, resp.text
            preds = resp.json()["predictions"]
            if len(expected) == 1:
                results["rest_row"] = {next(iter(expected)): _from_json_value(preds)}
            else:
                results["rest_row"] = {k: _from_json_value([p[k] for p in preds]) for k in expected}
        finally:
            rest.close()
            grpc_client.close()
    for how, outputs in results.items():
        assert set(outputs) == set(expected), f"{how}: outputs {sorted(outputs)} != {sorted(expected)}"
        for key, want in expected.items():
            got, want = np.asarray(outputs[key]), np.asarray(want)
            if want.dtype.kind in "OSU":
                assert got.tolist() == [[_b(x) for x in row] for row in want.tolist()] if want.ndim == 2 \
                    else got.tolist() == [_b(x) for x in np.ravel(want).tolist()], f"{how}: {key} differs"
            else:
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol,
                                           err_msg=f"{how}: {key}")
    return results


def _b(x: Any) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("utf-8")
