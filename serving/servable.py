"""One loaded model version: its SignatureDefs and Predict / Classify / Regress over them.

Loading reads ``saved_model.pb`` for the SignatureDefs (metadata, dtypes, the op denylist) and
``tf.saved_model.load`` for the callable signatures; warm-up records are replayed before the
version is reported AVAILABLE (TFSERVING_CONTRACT.md §3.4, §4).
"""
from __future__ import annotations

from concurrent.futures import Future
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
        self._flat = {key: _FlatCall.make(fn, self.signature_defs[key])
                      for key, fn in self._functions.items() if key in self.signature_defs}
        # alias → DataType enum, per signature (what REST needs to parse JSON).
        self.input_dtypes = {k: {a: int(t.dtype) for a, t in s.inputs.items()}
                             for k, s in self.signature_defs.items()}
        self._tf = tf
        self.batcher = None              # a serving.batching.BatchScheduler (--enable_batching)
        self.unbatchable: set[str] = set()
        self._batchable = {key: _has_batch_dimension(sig) for key, sig in self.signature_defs.items()}

    # ------------------------------------------------------------------------------------------
    def signature(self, signature_name: str):
        key = signature_name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(key) if key in self.signature_defs else None
        if sig is None or key not in self._functions:
            return key, None
        return key, sig

    def predict(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """Run a signature on ``{alias: ndarray}``; returns ``{alias: ndarray}`` (all outputs, or
        those in ``output_filter``). Blocks; goes through the batcher when batching is on."""
        key, sig = self._check_predict(signature_name, inputs, output_filter)
        future = self._submit(key, inputs)
        if future is None:
            return self._call(key, sig, inputs, output_filter)
        out = future.result()
        return {alias: out[alias] for alias in output_filter} if output_filter else out

    def predict_future(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> Future | None:
        """Queue a Predict on the batcher: a future of all outputs, or None when the request is
        not batched (batching off, no batch dimension): then call ``predict``. Bad requests
        raise ``ServingError`` here, before anything is queued."""
        if self.batcher is None:
            return None
        key, _sig = self._check_predict(signature_name, inputs, ())
        return self._submit(key, inputs)

    def _check_predict(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter):
        key, sig = self.signature(signature_name)
        if sig is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        self.check_input_aliases(sig, set(inputs))
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                              f"in the set {{{','.join(sorted(sig.outputs))}}}.")
        self._check_dtypes(sig, inputs)
        return key, sig

    @staticmethod
    def check_input_aliases(sig, sent: set) -> None:
        """TF Serving's errors for request aliases that differ from the signature's: a count
        mismatch first (predict_util.cc VerifyRequestInputsSize), else the first signature alias
        missing from the request (saved_model/util.cc GetInputValues)."""
        expected = set(sig.inputs)
        if sent == expected:
            return
        if len(sent) != len(expected):
            extra = ",".join(sorted(sent - expected))
            missing = ",".join(sorted(expected - sent))
            raise invalid(f"input size does not match signature: {len(sent)}!={len(expected)} "
                          f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                          f"Sent extra: {{{extra}}}. Missing but required: {{{missing}}}.")
        alias = min(expected - sent)
        raise invalid(f"Signature input alias: {alias}(feed name: {sig.inputs[alias].name}) not found in request "
                      f"and no default value provided. Inputs expected to be in the request "
                      f"{{{','.join(sorted(sent))}}}, or default input alias set: ")

    def _submit(self, key: str, inputs: Mapping[str, np.ndarray]) -> Future | None:
        """The batcher's future for this request, or None if it must run unbatched."""
        if self.batcher is None or not self._batchable.get(key) or key in self.unbatchable:
            return None
        flat = self._flat.get(key)
        if flat is None or not flat.accepts(inputs):
            return None    # shape errors come from TF's own checks, unbatched
        sizes = {arr.shape[0] if arr.ndim else None for arr in inputs.values()}
        if len(sizes) != 1 or None in sizes or 0 in sizes:
            return None
        return self.batcher.submit(self, key, inputs, sizes.pop())

    def run_signature(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One signature call on checked inputs (what the batcher calls)."""
        return self._call(key, self.signature_defs[key], inputs)

    def _check_dtypes(self, sig, inputs: Mapping[str, np.ndarray]) -> None:
        tf = self._tf
        for alias, arr in inputs.items():
            dtype = sig.inputs[alias].dtype
            if dtype == DT_STRING:
                if arr.dtype.kind not in "OSU":
                    raise invalid(f"Expects arg[{alias}] to be string but {arr.dtype} is provided")
            elif arr.dtype != np.dtype(NUMPY.get(dtype, arr.dtype)):
                raise invalid(f"Expects arg[{alias}] to be {tf.as_dtype(dtype).name} but "
                              f"{tf.as_dtype(arr.dtype).name if arr.dtype.kind not in 'OSU' else 'string'} "
                              "is provided")

    def _call(self, key: str, sig, inputs: Mapping[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        tf = self._tf
        self._check_dtypes(sig, inputs)
        feeds = {alias: tf.constant(arr, dtype=tf.as_dtype(sig.inputs[alias].dtype)) for alias, arr in inputs.items()}
        flat = self._flat.get(key)
        try:
            if flat is not None and flat.accepts(inputs):
                out = flat(feeds)
            else:  # the structured call raises TF's own argument errors
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


class _FlatCall:
    """A signature called with its flat argument list, skipping the structured-argument binding.

    ``ConcreteFunction.__call__`` re-binds keyword arguments against the function type on every
    call (``canonicalize_function_inputs``), which costs as much as running a small model (0.2–0.4 ms
    of a 0.5 ms request). The server has already checked the aliases and dtypes, so when every
    shape is compatible with the SignatureDef it calls ``_call_flat`` with the arguments in the
    function's parameter order and its captured inputs (what the structured path does after
    binding). Anything else goes through the structured call, which raises TF's own errors.
    """

    def __init__(self, fn, order: tuple[str, ...], shapes: dict[str, tuple[int, ...] | None]):
        self.fn, self.order, self.shapes = fn, order, shapes
        self.captured = list(fn.captured_inputs)

    @classmethod
    def make(cls, fn, sig) -> "_FlatCall | None":
        try:
            params = fn.function_type.parameters
            order = tuple(params)
            if set(order) != set(sig.inputs) or not hasattr(fn, "_call_flat"):
                return None
            if any(p.kind != p.KEYWORD_ONLY for p in params.values()):
                return None
        except Exception:  # noqa: BLE001 - an unexpected function object: use the structured call
            return None
        shapes = {}
        for alias, info in sig.inputs.items():
            ts = info.tensor_shape
            shapes[alias] = None if ts.unknown_rank else tuple(int(d.size) for d in ts.dim)
        return cls(fn, order, shapes)

    def accepts(self, inputs: Mapping[str, np.ndarray]) -> bool:
        for alias, arr in inputs.items():
            want = self.shapes.get(alias)
            if want is None:
                continue
            if arr.ndim != len(want) or any(w >= 0 and w != d for w, d in zip(want, arr.shape)):
                return False
        return True

    def __call__(self, feeds):
        return self.fn._call_flat([feeds[alias] for alias in self.order], self.captured)  # noqa: SLF001


def _has_batch_dimension(sig) -> bool:
    """Every input and output of the SignatureDef has a leading unknown (batch) dimension.

    An output of unknown rank is allowed; the batcher checks it on the first batch."""
    if not sig.inputs:
        return False
    for info, is_input in [(i, True) for i in sig.inputs.values()] + [(o, False) for o in sig.outputs.values()]:
        ts = info.tensor_shape
        if ts.unknown_rank:
            if is_input:
                return False
            continue
        if not ts.dim or ts.dim[0].size != -1:
            return False
    return True


def examples_from_input(inp: Any) -> list[bytes]:
    """``tensorflow.serving.Input`` → serialized examples (context bytes + example bytes)."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context.SerializeToString()
        return [ctx + e.SerializeToString() for e in inp.example_list_with_context.examples]
    raise invalid("Input is empty.")

