"""One round trip for every model family: predict → SavedModel → fresh process → same numbers.

``check_save_reload_roundtrip(model, batch, tmp_path)`` (signature kept stable for other model
families): ``model(batch)`` must return a dict of named outputs. If the model has
``serving_function()`` it is used as the serving signature, otherwise one is traced from
``model.__call__`` over ``batch``'s feature names, dtypes and ranks (batch dimension free).
The SavedModel is loaded in a subprocess that never imports the project, like TF Serving.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

_RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    saved, inputs, outputs = sys.argv[1:4]
    data = np.load(inputs, allow_pickle=False)
    serve = tf.saved_model.load(saved).signatures["serving_default"]
    result = serve(**{k: tf.constant(data[k]) for k in data.files})
    np.savez(outputs, **{k: v.numpy() for k, v in result.items()})
""")


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


def check_save_reload_roundtrip(model, batch, tmp_path) -> dict:
    """Save ``model`` with a serving signature over raw features, reload it in a fresh process
    and assert its predictions on ``batch`` equal the in-process ones. Returns those outputs."""
    import tensorflow as tf  # noqa: PLC0415

    tmp_path = Path(tmp_path)
    serve = _serving_function(model, batch)
    inputs = {k: v for k, v in batch.items() if k in serve.input_signature[0]}
    expected = {k: v.numpy() for k, v in serve(inputs).items()}
    module = tf.Module()
    module.model = model
    module.serve = serve
    saved = tmp_path / "saved_model"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": serve})
    arrays = {k: np.asarray(v.numpy()) for k, v in inputs.items()}
    # Strings come back as object arrays; fixed-width bytes load without pickle.
    arrays = {k: v.astype(bytes) if v.dtype == object else v for k, v in arrays.items()}
    np.savez(tmp_path / "inputs.npz", **arrays)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-c", _RELOAD, str(saved), str(tmp_path / "inputs.npz"),
         str(tmp_path / "outputs.npz")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = np.load(tmp_path / "outputs.npz")
    assert set(reloaded.files) == set(expected), (reloaded.files, list(expected))
    for name, value in expected.items():
        np.testing.assert_allclose(reloaded[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
    return expected
