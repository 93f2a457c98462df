"""One loaded model version: its SignatureDefs and Predict / Classify / Regress over them.

Loading reads ``saved_model.pb`` for the SignatureDefs (metadata, dtypes, the op denylist) and
``tf.saved_model.load`` for the callable signatures; warm-up records are replayed before the
version is reported AVAILABLE (TFSERVING_CONTRACT.md §3.4, §4).
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from adpush_core.tfenv import import_tensorflow
from serving.dtypes import DT_STRING, NUMPY
from serving.errors import Code, ServingError, from_tf_error, invalid
from serving.verify import PY_FUNC_OPS
from serving.warmup import read_warmup_requests

DEFAULT_SIGNATURE = "serving_default"
log = logging.getLogger(__name__)


class Servable:
    """A SavedModel version ready to answer requests (thread-safe: TF functions are)."""

    def __init__(self, name: str, version: int, path: str | Path, tags: tuple[str, ...] = ("serve",)):
        tf = import_tensorflow()
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
        # The fast path: the MetaGraph in a Session, run in the calling thread (as TF Serving
        # runs it); the restored functions above stay for requests whose shapes do not fit the
        # SignatureDef, so that TF's own argument errors are kept.
        self._fast = _SessionSignatures.load(self.path, tags, {k: self.signature_defs[k] for k in self._functions
                                                                if k in self.signature_defs})
        # alias → DataType enum, per signature (what REST needs to parse JSON).
        self.input_dtypes = {k: {a: int(t.dtype) for a, t in s.inputs.items()}
                             for k, s in self.signature_defs.items()}
        # What every Predict is checked against, as plain Python: reading the SignatureDef proto
        # maps on each request cost more than the checks themselves.
        self._input_aliases = {k: frozenset(dtypes) for k, dtypes in self.input_dtypes.items()}
        self._output_aliases = {k: tuple(s.outputs) for k, s in self.signature_defs.items()}
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

    def predict_future(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                       output_filter: tuple[str, ...] = ()) -> Future | None:
        """Queue a Predict on the batcher: a future of all outputs (the caller applies
        ``output_filter``, checked here), or None when the request is not batched (batching off,
        no batch dimension): then call ``predict``. Bad requests raise ``ServingError`` here,
        before anything is queued."""
        if self.batcher is None:
            return None
        key, _sig = self._check_predict(signature_name, inputs, output_filter)
        return self._submit(key, inputs)

    def _check_predict(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter):
        key, sig = self.signature(signature_name)
        if sig is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        if inputs.keys() != self._input_aliases[key]:
            self.check_input_aliases(sig, set(inputs))
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be "
                              f"in the set {{{','.join(sorted(sig.outputs))}}}.")
        self._check_dtypes(key, inputs)
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
        fast = self._fast.get(key)
        if fast is None or not fast.accepts(inputs):
            return None    # shape errors come from TF's own checks, unbatched
        sizes = {arr.shape[0] if arr.ndim else None for arr in inputs.values()}
        if len(sizes) != 1 or None in sizes or 0 in sizes:
            return None
        return self.batcher.submit(self, key, inputs, sizes.pop())

    def run_signature(self, key: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One signature call on checked inputs (what the batcher calls)."""
        return self._call(key, self.signature_defs[key], inputs)

    def _check_dtypes(self, key: str, inputs: Mapping[str, np.ndarray]) -> None:
        tf = self._tf
        dtypes = self.input_dtypes[key]
        for alias, arr in inputs.items():
            dtype = dtypes[alias]
            if dtype == DT_STRING:
                if arr.dtype.kind not in "OSU":
                    raise invalid(f"Expects arg[{alias}] to be string but {arr.dtype} is provided")
            elif arr.dtype != np.dtype(NUMPY.get(dtype, arr.dtype)):
                raise invalid(f"Expects arg[{alias}] to be {tf.as_dtype(dtype).name} but "
                              f"{tf.as_dtype(arr.dtype).name if arr.dtype.kind not in 'OSU' else 'string'} "
                              "is provided")

    def _call(self, key: str, sig, inputs: Mapping[str, np.ndarray], output_filter=()) -> dict[str, np.ndarray]:
        """The signature on inputs whose aliases and dtypes have been checked (``_check_dtypes``)."""
        tf = self._tf
        wanted = tuple(output_filter) or self._output_aliases[key]
        fast = self._fast.get(key)
        try:
            if fast is not None and fast.accepts(inputs):
                return fast(inputs, wanted)
            # the structured call raises TF's own argument errors
            feeds = {alias: tf.constant(arr, dtype=tf.as_dtype(sig.inputs[alias].dtype))
                     for alias, arr in inputs.items()}
            out = self._functions[key](**feeds)
        except (tf.errors.OpError, TypeError, ValueError) as err:
            raise from_tf_error(err) from None
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
        inputs = {"inputs": np.array(examples, dtype=object)}
        self._check_dtypes(key, inputs)
        out = self._call(key, sig, inputs)["outputs"]
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
        inputs = {"inputs": np.array(examples, dtype=object)}
        self._check_dtypes(key, inputs)
        out = self._call(key, sig, inputs)
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
        from serving.tensor_proto import tensor_proto_to_ndarray

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


class _SessionSignatures:
    """The version's MetaGraph in a ``tf.compat.v1.Session``, every run in the calling thread.

    This is how TF Serving runs a SavedModel (``LoadSavedModel`` → ``Session::Run`` on the
    SignatureDef's tensor names). Against calling the restored ``ConcreteFunction`` it removes
    (measured on ``keyword_ctr``, one row): the keyword-argument binding (0.2–0.4 ms before the
    flat call was added), one ``tf.constant`` per input (~40 µs for five), and — the larger part
    when requests arrive one at a time — the hand-off of every function call to TF's inter-op
    thread pool and back: after 1 ms idle the function call took 0.47–0.62 ms, the session run
    in the caller's thread (``inter_op_parallelism_threads = -1``) 0.23–0.32 ms. Callables are
    made once per (signature, outputs) (``Session::MakeCallable``: no per-run graph lookups).
    """

    def __init__(self, session, signatures: Mapping[str, Any]):
        self.session = session
        self._calls: dict[str, _SessionCall] = {key: _SessionCall(self, sig) for key, sig in signatures.items()}

    @classmethod
    def load(cls, path: Path, tags, signatures: Mapping[str, Any]) -> dict[str, "_SessionCall"]:
        """``{signature key: _SessionCall}``; empty (every call structured) if the MetaGraph
        cannot be loaded into a Session."""
        tf = import_tensorflow()
        from tensorflow.python.saved_model import loader_impl

        graph = tf.Graph()
        # inter-op -1: run in the caller's thread; intra-op as --tensorflow_intra_op_parallelism
        config = tf.compat.v1.ConfigProto(
            inter_op_parallelism_threads=-1,
            intra_op_parallelism_threads=tf.config.threading.get_intra_op_parallelism_threads())
        session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                loader_impl.SavedModelLoader(str(path)).load(session, list(tags))
        except Exception as err:  # noqa: BLE001 - the restored functions still serve every request
            log.warning("SavedModel %s does not load into a Session (%s): serving it through its "
                        "restored functions", path, err)
            session.close()
            return {}
        return cls(session, signatures)._calls

    def __del__(self):
        try:
            self.session.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


class _SessionCall:
    """One signature run through ``_SessionSignatures``' session on checked inputs."""

    def __init__(self, owner: _SessionSignatures, sig):
        self._owner = owner                     # keeps the session open while this is used
        self.feeds = {alias: info.name for alias, info in sig.inputs.items()}
        self.fetches = {alias: info.name for alias, info in sig.outputs.items()}
        self.order = tuple(sorted(self.feeds))
        self.shapes = {}
        for alias, info in sig.inputs.items():
            ts = info.tensor_shape
            self.shapes[alias] = None if ts.unknown_rank else tuple(int(d.size) for d in ts.dim)
        self._callables: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def accepts(self, inputs: Mapping[str, np.ndarray]) -> bool:
        """Every alias of the signature is given, with a shape the SignatureDef allows."""
        if len(inputs) != len(self.order):
            return False
        for alias, arr in inputs.items():
            if alias not in self.feeds:
                return False
            want = self.shapes[alias]
            if want is None:
                continue
            if arr.ndim != len(want) or any(w >= 0 and w != d for w, d in zip(want, arr.shape)):
                return False
        return True

    def _callable(self, outputs: tuple[str, ...]):
        run = self._callables.get(outputs)
        if run is None:
            with self._lock:
                run = self._callables.get(outputs)
                if run is None:
                    from tensorflow.core.protobuf import config_pb2

                    options = config_pb2.CallableOptions(feed=[self.feeds[a] for a in self.order],
                                                         fetch=[self.fetches[a] for a in outputs])
                    # Session::MakeCallable: feeds and fetches resolved once (Session.make_callable
                    # with a feed list falls back to Session.run's per-call Python handling)
                    run = self._owner.session._make_callable_from_options(options)  # noqa: SLF001
                    self._callables[outputs] = run
        return run

    def __call__(self, inputs: Mapping[str, np.ndarray], outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        values = self._callable(outputs)(*[_feedable(inputs[alias]) for alias in self.order])
        return dict(zip(outputs, values))


def _feedable(arr: np.ndarray) -> np.ndarray:
    """numpy unicode strings become UTF-8 bytes (what ``tf.constant`` does with them)."""
    if arr.dtype.kind == "U":
        return np.vectorize(lambda v: v.encode("utf-8"), otypes=[object])(arr) if arr.size else arr.astype(object)
    return arr


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

