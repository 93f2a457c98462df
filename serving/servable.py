"""One loaded model version: its SignatureDefs and Predict / Classify / Regress over them.

Loading reads ``saved_model.pb`` for the SignatureDefs (metadata, dtypes, the op denylist) and
``tf.saved_model.load`` for the callable signatures; warm-up records are replayed before the
version is reported AVAILABLE (TFSERVING_CONTRACT.md §3.4, §4).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from serving.errors import Code, ServingError, from_tf_error, invalid
from serving.export import PY_FUNC_OPS, read_warmup_requests
from serving.tensors import DT_STRING, NUMPY

DEFAULT_SIGNATURE = "serving_default"


class Servable:
    """A SavedModel version ready to answer requests (thread-safe: TF functions are)."""

    def __init__(self, name: str, version: int, path: str | Path, tags: tuple[str, ...] = ("serve",)):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.name, self.version, self.path = name, int(version), Path(path)
        pb = self.path / "saved_model.pb"
        if not pb.exists():
            raise ServingError(Code.NOT_FOUND, f"Could not find SavedModel .pb or .pbtxt at supplied export "
                                               f"directory path: {self.path}")
        sm = saved_model_pb2.SavedModel()
        sm.ParseFromString(pb.read_bytes())
        metas = [m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags)]
        if not metas:
            raise ServingError(Code.NOT_FOUND, f"Could not find meta graph def matching supplied tags: "
                                               f"{{ {' '.join(tags)} }}")
        meta = metas[0]
        ops = {n.op for n in meta.graph_def.node}
        for fn in meta.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
        bad = sorted(ops & set(PY_FUNC_OPS))
        if bad:
            raise ServingError(Code.NOT_FOUND, f"Op type not registered '{bad[0]}' in binary: "
                                               "py-func ops cannot run in TensorFlow Serving")
        self.signature_defs = meta.signature_def
        try:
            self._loaded = tf.saved_model.load(str(self.path), tags=list(tags))
        except Exception as err:  # noqa: BLE001 - any load failure is reported in model status
            raise ServingError(Code.INTERNAL, f"Failed to load SavedModel at {self.path}: {err}") from err
        self._functions = dict(self._loaded.signatures)
        # alias → DataType enum, per signature (what REST needs to parse JSON).
        self.input_dtypes = {k: {a: int(t.dtype) for a, t in s.inputs.items()}
                             for k, s in self.signature_defs.items()}
        self._tf = tf

    # ------------------------------------------------------------------------------------------
    def signature(self, signature_name: str):
        key = signature_name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(key) if key in self.signature_defs else None
        if sig is None or key not in self._functions:
            return key, None
        return key, sig

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Run a signature on ``{alias: ndarray}``; returns ``{alias: ndarray}`` (all outputs)."""
        key, sig = self.signature(signature_name)
        if sig is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        expected = set(sig.inputs)
        sent = set(inputs)
        if sent != expected:
            extra = ",".join(sorted(sent - expected))
            missing = ",".join(sorted(expected - sent))
            raise invalid(f"input size does not match signature: {len(sent)}!={len(expected)} "
                          f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                          f"Sent extra: {{{extra}}}. Missing but required: {{{missing}}}.")
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                              f"in the set {{{','.join(sorted(sig.outputs))}}}.")
        return self._call(key, sig, inputs, output_filter)

    def _call(self, key: str, sig, inputs: Mapping[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        tf = self._tf
        feeds = {}
        for alias, arr in inputs.items():
            dtype = sig.inputs[alias].dtype
            if dtype == DT_STRING:
                if arr.dtype.kind not in "OSU":
                    raise invalid(f"Expects arg[{alias}] to be string but {arr.dtype} is provided")
            elif arr.dtype != np.dtype(NUMPY.get(dtype, arr.dtype)):
                raise invalid(f"Expects arg[{alias}] to be {tf.as_dtype(dtype).name} but "
                              f"{tf.as_dtype(arr.dtype).name if arr.dtype.kind not in 'OSU' else 'string'} "
                              "is provided")
            feeds[alias] = tf.constant(arr, dtype=tf.as_dtype(dtype))
        try:
            out = self._functions[key](**feeds)
        except (tf.errors.OpError, TypeError, ValueError) as err:
            raise from_tf_error(err) from None
        wanted = output_filter or tuple(sig.outputs)
        return {alias: out[alias].numpy() for alias in wanted}

    # ------------------------------------------------------------------------------------------
    def _example_signature(self, signature_name: str):
        key, sig = self.signature(signature_name)
        if sig is None:
            raise invalid(f"No signature was found with the name: {key}")
        if len(sig.inputs) != 1:
            raise invalid("Expected one input Tensor.")
        if "inputs" not in sig.inputs:
            raise invalid(f"No classification inputs found in SignatureDef: {key}")
        return key, sig

    def regress(self, signature_name: str, examples: list[bytes]) -> list[float]:
        key, sig = self._example_signature(signature_name)
        if len(sig.outputs) != 1:
            raise invalid("Expected one output Tensor.")
        if "outputs" not in sig.outputs:
            raise invalid(f"No regression outputs found in SignatureDef: {key}")
        if not examples:
            raise invalid("Input is empty.")
        out = self._call(key, sig, {"inputs": np.array(examples, dtype=object)})["outputs"]
        if out.dtype != np.float32:
            raise invalid(f"Expected output Tensor of DT_FLOAT.  Got: {out.dtype}")
        if not (out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)):
            raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                          f"{list(out.shape)}")
        if out.shape[0] != len(examples):
            raise invalid(f"Input batch size did not match output batch size: {len(examples)} vs. {out.shape[0]}")
        return [float(v) for v in out.reshape(-1)]

    def classify(self, signature_name: str, examples: list[bytes]) -> list[list[tuple[str, float]]]:
        key, sig = self._example_signature(signature_name)
        if not 1 <= len(sig.outputs) <= 2:
            raise invalid(f"Expected one or two output Tensors, found {len(sig.outputs)}")
        if "classes" not in sig.outputs and "scores" not in sig.outputs:
            raise invalid('Expected classification signature outputs to contain at least one of "classes" or '
                          f'"scores". Signature was: {key}')
        if not examples:
            raise invalid("Input is empty.")
        out = self._call(key, sig, {"inputs": np.array(examples, dtype=object)})
        classes, scores = out.get("classes"), out.get("scores")
        for t in (classes, scores):
            if t is not None and (t.ndim != 2 or t.shape[0] != len(examples)):
                raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {list(t.shape)}")
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise invalid(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. "
                          f"{scores.shape[1]}")
        n = (classes if classes is not None else scores).shape[1]
        results = []
        for i in range(len(examples)):
            row = []
            for j in range(n):
                label = classes[i, j].decode("utf-8", "replace") if classes is not None else ""
                score = float(scores[i, j]) if scores is not None else 0.0
                row.append((label, score))
            results.append(row)
        return results

    # ------------------------------------------------------------------------------------------
    def warm_up(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests``; a failure fails the load."""
        from serving.tensors import tensor_proto_to_ndarray

        logs = read_warmup_requests(self.path)
        for log in logs:
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                req = log.predict_log.request
                self.predict(req.model_spec.signature_name,
                             {k: tensor_proto_to_ndarray(v) for k, v in req.inputs.items()})
            elif kind in ("classify_log", "regress_log"):
                req = getattr(log, kind).request
                examples = examples_from_input(req.input)
                if kind == "classify_log":
                    self.classify(req.model_spec.signature_name, examples)
                else:
                    self.regress(req.model_spec.signature_name, examples)
            else:
                raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")
        return len(logs)


def examples_from_input(inp: Any) -> list[bytes]:
    """``tensorflow.serving.Input`` → serialized examples (context bytes + example bytes)."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context.SerializeToString()
        return [ctx + e.SerializeToString() for e in inp.example_list_with_context.examples]
    raise invalid("Input is empty.")

