"""TF Serving's gRPC ``PredictionService`` and ``ModelService`` (tensorflow-serving-api messages).

Outputs are typed ``*_val`` TensorProtos as the real server writes them; the response
``model_spec`` carries the resolved version and ``serving_default`` for an empty signature name.
Errors end the call with TF Serving's status code and message (TFSERVING_CONTRACT.md §5).

The server (``GrpcServer``) drives grpc's core completion queue from one thread, as REST's
event loop does its sockets: that thread takes a new call, reads its one request message, runs
a small request itself and starts the response batch, so a unary call costs one thread wake-up
instead of the ~9 hand-offs between ``grpc.server``'s polling thread and its pool
(serving/README.md, "Figures"). A batched Predict is queued on the batcher without waiting: the
batch thread that runs it sends the response, and the polling thread keeps taking calls, so
concurrent gRPC requests merge with each other and with REST's. A request larger than
``large_request_bytes`` runs in a pool of ``max_workers`` threads with the collector paused (as
REST's large ones do), so it stalls no other call; ``inline=False`` runs every request there
(for models slow enough that one call should not hold the others). grpc's public server API
has no such mode: ``grpc.server`` hands every call to a pool thread and ``grpc.aio`` hands every
event to an asyncio loop through a socket, so this uses ``grpc._cython.cygrpc`` (the layer both
are written on) directly; being a private API, ``setup.py`` pins grpcio to the measured 1.85.x,
and ``tests/serving/test_grpc_api.py`` / ``test_grpc_server.py`` hold the wire behaviour.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent import futures

from grpc._cython import cygrpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_management_pb2, predict_pb2, regression_pb2)

from serving.errors import Code, ServingError, invalid, too_large
from serving.idle_poll import IdlePoll
from serving.rest import signature_def_map, status_response
from serving.servable import DEFAULT_SIGNATURE, examples_from_input
from serving.tensor_proto import ndarray_to_tensor_proto, tensor_proto_to_ndarray

log = logging.getLogger(__name__)


def _resolve(manager, spec):
    if not spec.name:
        raise invalid("ModelSpec has no name specified.")
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.HasField("version_label") else None
    return manager.get(spec.name, version, label)


def _fill_spec(out_spec, servable, signature_name: str) -> None:
    out_spec.name = servable.name
    out_spec.version.value = servable.version
    out_spec.signature_name = signature_name or DEFAULT_SIGNATURE


_ITEMSIZE = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 7: 8, 8: 8, 9: 8, 10: 1, 14: 2, 17: 2, 18: 16, 19: 2,
             22: 4, 23: 8}  # DataType -> bytes per element (strings: the pointer; their bytes added)


def decoded_bytes(proto, shape: list[int]) -> int:
    """What ``make_ndarray`` would allocate for ``proto`` of dimensions ``shape``: the shape's
    elements, however few values the proto carries (a short ``float_val`` is repeated to fill it)."""
    elements = 1
    for size in shape:
        elements *= size if size > 0 else 0
    nbytes = elements * _ITEMSIZE.get(proto.dtype, 8)
    for value in proto.string_val:
        nbytes += len(value)
    return nbytes


def request_inputs(servable, signature_name: str, request, max_decoded_bytes: int) -> dict:
    """The request's tensors in TF Serving's order of checks (predict_util.cc
    ``VerifyRequestInputsSize``, then saved_model/util.cc ``GetInputValues`` alias by alias).

    Each TensorProto's shape is read once, for the size limit and the decoding both."""
    key, sig = servable.signature(signature_name)
    if sig is None:
        raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
    protos = request.inputs
    expected = servable.input_dtypes[key]
    if len(protos) != len(expected):
        servable.check_input_aliases(sig, set(protos))  # the size-mismatch error
    sent, total = {}, 0
    for alias, proto in protos.items():
        shape = [dim.size for dim in proto.tensor_shape.dim]
        total += decoded_bytes(proto, shape)
        sent[alias] = proto, shape
    if total > max_decoded_bytes:
        raise too_large(f"The request's tensors decode to {total} bytes, over the server's limit of "
                        f"{max_decoded_bytes} (--max_decoded_bytes)")
    inputs = {}
    for alias in sorted(expected):
        if alias not in sent:
            raise invalid(f"Signature input alias: {alias}(feed name: {sig.inputs[alias].name}) not found in "
                          f"request and no default value provided. Inputs expected to be in the request "
                          f"{{{','.join(sorted(sent))}}}, or default input alias set: ")
        try:
            inputs[alias] = tensor_proto_to_ndarray(*sent[alias])
        except Exception:  # noqa: BLE001
            raise invalid(f"tensor parsing error: {alias}") from None
    return inputs


def _predict_response(servable, signature_name: str, outputs) -> predict_pb2.PredictResponse:
    resp = predict_pb2.PredictResponse()
    _fill_spec(resp.model_spec, servable, signature_name)
    for alias, arr in outputs.items():
        ndarray_to_tensor_proto(arr, resp.outputs[alias])
    return resp


def _output_filter(request) -> tuple[str, ...]:
    seen = set()
    for alias in request.output_filter:
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return tuple(request.output_filter)


class PredictionService:
    """``PredictionService``'s logic: request message → response message, ``ServingError`` with
    TF Serving's code and message for a bad request."""

    def __init__(self, manager, max_decoded_bytes: int = 2 << 30):
        self.manager = manager
        self.max_decoded_bytes = max_decoded_bytes

    def predict_inputs(self, request):
        """(servable, checked input arrays, output filter) of a Predict request."""
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        servable = _resolve(self.manager, request.model_spec)
        inputs = request_inputs(servable, request.model_spec.signature_name, request, self.max_decoded_bytes)
        return servable, inputs, _output_filter(request)

    def predict(self, request) -> predict_pb2.PredictResponse:
        servable, inputs, output_filter = self.predict_inputs(request)
        signature_name = request.model_spec.signature_name
        return _predict_response(servable, signature_name, servable.predict(signature_name, inputs, output_filter))

    def classify(self, request) -> classification_pb2.ClassificationResponse:
        servable = _resolve(self.manager, request.model_spec)
        results = servable.classify(request.model_spec.signature_name, examples_from_input(request.input))
        resp = classification_pb2.ClassificationResponse()
        _fill_spec(resp.model_spec, servable, request.model_spec.signature_name)
        for row in results:
            c = resp.result.classifications.add()
            for label, score in row:
                c.classes.add(label=label, score=score)
        return resp

    def regress(self, request) -> regression_pb2.RegressionResponse:
        servable = _resolve(self.manager, request.model_spec)
        values = servable.regress(request.model_spec.signature_name, examples_from_input(request.input))
        resp = regression_pb2.RegressionResponse()
        _fill_spec(resp.model_spec, servable, request.model_spec.signature_name)
        for v in values:
            resp.result.regressions.add(value=v)
        return resp

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for f in request.metadata_field:
            if f != "signature_def":
                raise invalid(f"Metadata field {f} is not supported")
        servable = _resolve(self.manager, request.model_spec)
        resp = get_model_metadata_pb2.GetModelMetadataResponse()
        resp.model_spec.name = servable.name
        resp.model_spec.version.value = servable.version
        resp.metadata["signature_def"].Pack(signature_def_map(servable))
        return resp


class ModelService:
    """``ModelService``'s logic (``GetModelStatus``)."""

    def __init__(self, manager):
        self.manager = manager

    def status(self, request):
        spec = request.model_spec
        if not spec.name:
            raise invalid("ModelSpec has no name specified.")
        version = spec.version.value if spec.HasField("version") else None
        return status_response(self.manager, spec.name, version)


def _unimplemented(message: str):
    def run(request):
        raise ServingError(Code.UNIMPLEMENTED, message)

    return run


class _Method:
    """One RPC: its request type, what answers it, and its ``API`` label in the metrics (None:
    not counted, as TF Serving counts Predict / Classify / Regress only)."""

    __slots__ = ("name", "request_type", "run", "api")

    def __init__(self, name: str, request_type, run, api: str | None = None):
        self.name, self.request_type, self.run, self.api = name, request_type, run, api


_PREDICTION = "/tensorflow.serving.PredictionService/"
_MODEL = "/tensorflow.serving.ModelService/"
_NEW_CALL = object()   # the completion-queue tag of an accepted call
_SHUTDOWN = object()   # ... of the server's shutdown


class _Rpc:
    """One call in flight: a batch that receives its message, then one that sends the answer and
    receives the client's close (three completion-queue events with the new call's). ``due``
    counts its batches the core has not completed yet; the call is over when it reaches 0."""

    __slots__ = ("server", "call", "method", "start", "due", "lock")

    def __init__(self, server: "GrpcServer", call, method: _Method):
        self.server, self.call, self.method = server, call, method
        self.start = 0.0
        self.due = 0
        self.lock = threading.Lock()   # the batch threads and the polling thread both start batches

    def batch(self, operations, on_done) -> None:
        with self.lock:
            if self.call.start_server_batch(operations, (self, on_done)) == 0:  # GRPC_CALL_OK
                self.due += 1

    def completed(self) -> bool:
        """One batch done (polling thread); True if it was the call's last."""
        with self.lock:
            self.due -= 1
            return self.due == 0

    # -- the call's steps, each run from a completion-queue event ---------------------------------
    def on_message(self, event) -> None:
        data = event.batch_operations[0].message() if event.success else None
        if data is None:
            if event.success:   # the client half-closed without a message
                self.finish_error(Code.UNIMPLEMENTED,
                                  f'"{self.method.name}" requires exactly one request message.')
            return
        self.start = time.perf_counter()
        self.server.handle(self, data)

    def on_sent(self, event) -> None:
        pass

    # -- answering (any thread) -------------------------------------------------------------------
    def finish(self, response, request=None) -> None:
        try:
            payload = response.SerializeToString()
        except Exception as err:  # noqa: BLE001 - grpc's own wording for a failed serialization
            log.exception("gRPC response serialization failed")
            self.finish_error(Code.INTERNAL, f"Failed to serialize response: {err}", request)
            return
        self.record(Code.OK, request, response)   # before the client can see the answer
        self.batch((cygrpc.SendInitialMetadataOperation(None, 0),
                    cygrpc.SendMessageOperation(payload, 0),
                    cygrpc.SendStatusFromServerOperation(None, cygrpc.StatusCode.ok, b"", 0),
                    cygrpc.ReceiveCloseOnServerOperation(0)), _Rpc.on_sent)

    def finish_error(self, code: Code, details: str, request=None) -> None:
        self.record(code, request, None)
        self.batch((cygrpc.SendInitialMetadataOperation(None, 0),
                    cygrpc.SendStatusFromServerOperation(None, _CYGRPC_CODE[code], details.encode("utf-8"), 0),
                    cygrpc.ReceiveCloseOnServerOperation(0)), _Rpc.on_sent)

    def fail(self, err: Exception, request=None) -> None:
        if isinstance(err, ServingError):
            self.finish_error(err.code, err.grpc_details(), request)
        else:   # grpc.server's answer to an exception in a handler
            log.error("gRPC %s failed", self.method.name, exc_info=err)
            self.finish_error(Code.UNKNOWN, f"Exception calling application: {err}", request)

    def record(self, code: Code, request, response) -> None:
        metrics = self.server.metrics
        if metrics is None or self.method.api is None or request is None:
            return
        spec = response.model_spec if response is not None else request.model_spec
        metrics.record(model_name=request.model_spec.name, api=self.method.api, entrypoint="GRPC",
                       status=code.name, version=str(spec.version.value) if spec.HasField("version") else "",
                       latency_us=(time.perf_counter() - self.start) * 1e6)


_QUEUE_TIMEOUT = cygrpc.CompletionType.queue_timeout
_CYGRPC_CODE = {code: cygrpc.StatusCode(int(code)) for code in Code}
_UNKNOWN = _Method("", None, None)


def _is_event(event) -> bool:
    return event.completion_type != _QUEUE_TIMEOUT


class GrpcServer:
    """``PredictionService`` + ``ModelService`` on grpc's core, driven from one polling thread
    (module docstring). ``max_request_bytes`` is grpc's receive limit (over it the core answers
    RESOURCE_EXHAUSTED); ``metrics`` (a ``ServingMetrics``) records Predict / Classify / Regress."""

    def __init__(self, manager, host: str = "127.0.0.1", port: int = 0, max_workers: int = 16,
                 max_request_bytes: int = 2**31 - 1, max_decoded_bytes: int = 2 << 30, metrics=None,
                 large_request_bytes: int = 256 << 10, inline: bool = True, busy_poll_us: int = 0):
        self.manager = manager
        self.busy_poll_us = busy_poll_us
        self.metrics = metrics
        self.large_request_bytes = large_request_bytes if inline else -1
        self.prediction = PredictionService(manager, max_decoded_bytes)
        models = ModelService(manager)
        p = self.prediction
        self.methods = {name.encode(): method for name, method in (
            (_PREDICTION + "Predict", _Method(_PREDICTION + "Predict", predict_pb2.PredictRequest, p.predict,
                                              "Predict")),
            (_PREDICTION + "Classify", _Method(_PREDICTION + "Classify", classification_pb2.ClassificationRequest,
                                               p.classify, "Classify")),
            (_PREDICTION + "Regress", _Method(_PREDICTION + "Regress", regression_pb2.RegressionRequest, p.regress,
                                              "Regress")),
            (_PREDICTION + "GetModelMetadata", _Method(_PREDICTION + "GetModelMetadata",
                                                       get_model_metadata_pb2.GetModelMetadataRequest, p.metadata)),
            (_PREDICTION + "MultiInference", _Method(
                _PREDICTION + "MultiInference", inference_pb2.MultiInferenceRequest,
                _unimplemented("MultiInference is not implemented by the local server"))),
            (_MODEL + "GetModelStatus", _Method(_MODEL + "GetModelStatus", get_model_status_pb2.GetModelStatusRequest,
                                                models.status)),
            (_MODEL + "HandleReloadConfigRequest", _Method(
                _MODEL + "HandleReloadConfigRequest", model_management_pb2.ReloadConfigRequest,
                _unimplemented("HandleReloadConfigRequest is not implemented by the local server"))),
        )}
        self._predict = self.methods[(_PREDICTION + "Predict").encode()]
        self._pool = futures.ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="grpc")
        self._cq = cygrpc.CompletionQueue()
        self._server = cygrpc.Server((("grpc.max_receive_message_length", max_request_bytes),
                                      ("grpc.max_send_message_length", 2**31 - 1),
                                      ("grpc.so_reuseport", 0)), False)
        self._server.register_completion_queue(self._cq)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self._server.add_http2_port(address.encode())
        if not self.port:
            raise OSError(f"cannot bind gRPC to {address}")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._accepting = False     # a request_call is outstanding
        self._stopping = False
        self._stopped = threading.Event()
        self._thread = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._server.start()
        self._request_call()
        self._thread = threading.Thread(target=self._serve, name="grpc-serve", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 10.0) -> None:
        """Reject new RPCs, let in-flight ones finish within ``grace`` seconds, then cancel them."""
        if self._thread is None:
            return
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._server.shutdown(self._cq, _SHUTDOWN)
        if not self._stopped.wait(grace):
            self._server.cancel_all_calls()
            self._stopped.wait(5.0)
        self._thread.join(5.0)
        self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _request_call(self) -> None:
        self._server.request_call(self._cq, self._cq, _NEW_CALL)
        self._accepting = True

    # -- the polling thread -------------------------------------------------------------------------
    def _serve(self) -> None:
        cq = self._cq
        shut_down = False
        wait = cq.poll
        if self.busy_poll_us:
            wait = functools.partial(IdlePoll(self.busy_poll_us).wait, functools.partial(cq.poll, 0),
                                     lambda _timeout: cq.poll(), _is_event)
        while True:
            event = wait()
            tag = event.tag
            if tag is _NEW_CALL:
                self._accepting = False
                if event.success:
                    self._on_call(event)
                with self._lock:   # never after shutdown() (grpc.server serialises them the same way)
                    if not self._stopping:
                        self._request_call()
            elif tag is _SHUTDOWN:
                shut_down = True
            elif tag is not None:
                rpc, on_done = tag
                try:
                    on_done(rpc, event)
                except Exception:  # noqa: BLE001 - the polling thread must keep going
                    log.exception("gRPC call step failed")
                if rpc.completed():
                    with self._lock:
                        self._in_flight -= 1
            event = tag = None   # drop the call's references before waiting again
            if shut_down and not self._accepting and self._in_flight == 0:
                with self._lock:   # stop() may still be inside shutdown(): the core server must outlive it
                    self._server.destroy()
                self._stopped.set()
                return

    def _on_call(self, event) -> None:
        method = self.methods.get(event.call_details.method)
        rpc = _Rpc(self, event.call, method or _UNKNOWN)
        with self._lock:
            self._in_flight += 1
        if method is None:   # grpc.server's answer to a method nobody registered
            rpc.batch((cygrpc.SendInitialMetadataOperation(None, 0), cygrpc.ReceiveCloseOnServerOperation(0),
                       cygrpc.SendStatusFromServerOperation(None, cygrpc.StatusCode.unimplemented,
                                                            b"Method not found!", 0)), _Rpc.on_sent)
        else:
            rpc.batch((cygrpc.ReceiveMessageOperation(0),), _Rpc.on_message)
        if rpc.due == 0:   # the core took neither batch (the call is already gone)
            with self._lock:
                self._in_flight -= 1

    def handle(self, rpc: _Rpc, data: bytes) -> None:
        """The request's bytes are in: answer a small one here, queue a batched Predict, or hand a
        large one (or every one, ``inline=False``) to the pool."""
        if len(data) > self.large_request_bytes:
            self._pool.submit(self._run_large, rpc, data)
            return
        request = self._parse(rpc, data)
        if request is None:
            return
        if rpc.method is self._predict and self.manager.batcher is not None:
            try:
                queued = self._queue_predict(rpc, request)
            except Exception as err:  # noqa: BLE001
                rpc.fail(err, request)
                return
            if queued:
                return
        self._run(rpc, request)

    @staticmethod
    def _parse(rpc: _Rpc, data: bytes):
        try:
            return rpc.method.request_type.FromString(data)
        except Exception:  # noqa: BLE001 - grpc.server's answer to an undecodable request
            rpc.finish_error(Code.INTERNAL, "Exception deserializing request!")
            return None

    @staticmethod
    def _run(rpc: _Rpc, request) -> None:
        try:
            response = rpc.method.run(request)
        except Exception as err:  # noqa: BLE001
            rpc.fail(err, request)
            return
        rpc.finish(response, request)

    def _run_large(self, rpc: _Rpc, data: bytes) -> None:
        from serving.rest import large_request_mode

        with large_request_mode():
            request = self._parse(rpc, data)
            if request is not None:
                self._run(rpc, request)

    def _queue_predict(self, rpc: _Rpc, request) -> bool:
        """Put a Predict on the batcher; the batch thread answers it. False: it runs unbatched."""
        servable, inputs, output_filter = self.prediction.predict_inputs(request)
        signature_name = request.model_spec.signature_name
        future = servable.predict_future(signature_name, inputs, output_filter)
        if future is None:
            return False

        def done(fut) -> None:
            try:
                outputs = fut.result()
                if output_filter:
                    outputs = {alias: outputs[alias] for alias in output_filter}
                response = _predict_response(servable, signature_name, outputs)
            except Exception as err:  # noqa: BLE001
                rpc.fail(err, request)
                return
            rpc.finish(response, request)

        future.add_done_callback(done)
        return True


__all__ = ["GrpcServer", "PredictionService", "ModelService"]
