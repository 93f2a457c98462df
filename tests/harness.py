"""One round trip for every model family: predict → SavedModel → fresh process → same numbers.

``check_save_reload_roundtrip(model, batch, tmp_path, save=None)`` (``save``: the family's own
export): ``model(batch)`` must return a dict of named outputs. If the model has
``serving_function()`` it is used as the serving signature, otherwise one is traced from
``model.__call__`` over ``batch``'s feature names, dtypes and ranks (batch dimension free).
The SavedModel is loaded in a subprocess that never imports the project, like TF Serving;
``check_saved_model_reload(saved, calls, expected, tmp_path)`` does that part for a SavedModel a
family's own export wrote, over any of its signatures.

``check_serving_roundtrip(export_dir, signature_name, inputs, expected)`` serves a published
version (``BASE/NAME/<version>``) with the local server and checks that REST row format, REST
columnar format and gRPC all return the in-process numbers (1e-6)::

    expected = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**tensors).items()}
    check_serving_roundtrip(path, "serving_default", inputs, expected)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Mapping

import numpy as np

_RELOAD = textwrap.dedent("""
    import pickle
    import sys
    import tensorflow as tf
    saved, inputs, outputs = sys.argv[1:4]
    with open(inputs, "rb") as f:
        calls = pickle.load(f)
    signatures = tf.saved_model.load(saved).signatures
    result = {name: {k: v.numpy() for k, v in signatures[name](
                  **{k: tf.constant(v) for k, v in feed.items()}).items()}
              for name, feed in calls.items()}
    with open(outputs, "wb") as f:
        pickle.dump(result, f)
""")


def check_saved_model_reload(saved, calls: Mapping[str, Mapping[str, np.ndarray]],
                             expected: Mapping[str, Mapping[str, np.ndarray]], tmp_path) -> None:
    """Load the SavedModel at ``saved`` in a fresh process that never imports the project (as TF
    Serving does), call each signature of ``calls`` (``{signature: {input: array}}``) and assert
    its outputs equal ``expected`` (``{signature: {output: array}}``: strings exactly, numbers
    to 1e-6)."""
    import pickle  # noqa: PLC0415

    tmp_path = Path(tmp_path)
    with open(tmp_path / "inputs.pkl", "wb") as f:
        pickle.dump({name: {k: np.asarray(v) for k, v in feed.items()} for name, feed in calls.items()}, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-c", _RELOAD, str(saved), str(tmp_path / "inputs.pkl"),
         str(tmp_path / "outputs.pkl")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "outputs.pkl", "rb") as f:
        reloaded = pickle.load(f)
    for name, want in expected.items():
        got = reloaded[name]
        assert set(got) == set(want), (name, sorted(got), sorted(want))
        for key, value in want.items():
            value = np.asarray(value)
            if value.dtype.kind in "OSU":
                assert got[key].tolist() == value.tolist(), f"{name}: {key}"
            else:
                np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7, err_msg=f"{name}: {key}")


def _serving_function(model, batch):
    import tensorflow as tf  # noqa: PLC0415

    if hasattr(model, "serving_function"):
        return model.serving_function()
    signature = {name: tf.TensorSpec([None] + list(value.shape[1:]), value.dtype, name=name)
                 for name, value in batch.items()}

    @tf.function(input_signature=[signature])
    def serve(features):
        return model(features, training=False)

    return serve


def check_save_reload_roundtrip(model, batch, tmp_path, save=None) -> dict:
    """Save ``model`` with a serving signature over raw features, reload it in a fresh process
    and assert its predictions on ``batch`` equal the in-process ones. Returns those outputs.

    ``save(model, path)``: the family's own export (e.g. ``tfrs_models.cascade.export.
    export_saved_model``), whose ``serving_default`` must be ``model.serving_function()``;
    default: a module holding the model and the serving function."""
    import tensorflow as tf  # noqa: PLC0415

    tmp_path = Path(tmp_path)
    serve = _serving_function(model, batch)
    inputs = {k: v for k, v in batch.items() if k in serve.input_signature[0]}
    expected = {k: v.numpy() for k, v in serve(inputs).items()}
    saved = tmp_path / "saved_model"
    if save is not None:
        save(model, saved)
    else:
        module = tf.Module()
        module.model = model
        module.serve = serve
        tf.saved_model.save(module, str(saved), signatures={"serving_default": serve})
    arrays = {k: np.asarray(v.numpy()) for k, v in inputs.items()}
    check_saved_model_reload(saved, {"serving_default": arrays}, {"serving_default": expected}, tmp_path)
    return expected


def _row_value(value: np.ndarray | Any) -> Any:
    from serving.rest_client import _to_json_value

    return _to_json_value(np.asarray(value))


def check_serving_roundtrip(export_dir: str | Path, signature_name: str, inputs: Mapping[str, np.ndarray],
                            expected: Mapping[str, np.ndarray], atol: float = 1e-6) -> dict[str, dict]:
    """Serve ``export_dir`` (``BASE/NAME/<version>``) and compare REST row, REST columnar and
    gRPC outputs of ``signature_name`` with ``expected``; raises AssertionError on a mismatch.

    Returns the three output dicts (``{"rest_row", "rest_columnar", "grpc"}``).
    """
    import requests

    from serving.client import GrpcClient, RestClient
    from serving.rest_client import _from_json_value
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
