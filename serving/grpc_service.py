"""TF Serving's gRPC ``PredictionService`` and ``ModelService`` on the tensorflow-serving-api bases.

Outputs are typed ``*_val`` TensorProtos as the real server writes them; the response
``model_spec`` carries the resolved version and ``serving_default`` for an empty signature name.
Errors abort with TF Serving's status code and message (TFSERVING_CONTRACT.md §5).
"""
from __future__ import annotations

import logging
from concurrent import futures

import grpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)

from serving.errors import ServingError, invalid
from serving.rest import signature_def_map, status_response
from serving.servable import DEFAULT_SIGNATURE, examples_from_input
from serving.tensors import ndarray_to_tensor_proto, tensor_proto_to_ndarray

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


def _abort(context, err: ServingError):
    context.abort(grpc.StatusCode[err.code.name], err.grpc_details())


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def Predict(self, request, context):
        try:
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            servable = _resolve(self.manager, request.model_spec)
            inputs = {}
            for alias, proto in request.inputs.items():
                try:
                    inputs[alias] = tensor_proto_to_ndarray(proto)
                except Exception:  # noqa: BLE001
                    raise invalid(f"tensor parsing error: {alias}") from None
            seen = set()
            for alias in request.output_filter:
                if alias in seen:
                    raise invalid(f"duplicate output tensor alias: {alias}")
                seen.add(alias)
            outputs = servable.predict(request.model_spec.signature_name, inputs, tuple(request.output_filter))
            resp = predict_pb2.PredictResponse()
            _fill_spec(resp.model_spec, servable, request.model_spec.signature_name)
            for alias, arr in outputs.items():
                resp.outputs[alias].CopyFrom(ndarray_to_tensor_proto(arr))
            return resp
        except ServingError as err:
            _abort(context, err)

    def Classify(self, request, context):
        try:
            servable = _resolve(self.manager, request.model_spec)
            results = servable.classify(request.model_spec.signature_name, examples_from_input(request.input))
            resp = classification_pb2.ClassificationResponse()
            _fill_spec(resp.model_spec, servable, request.model_spec.signature_name)
            for row in results:
                c = resp.result.classifications.add()
                for label, score in row:
                    c.classes.add(label=label, score=score)
            return resp
        except ServingError as err:
            _abort(context, err)

    def Regress(self, request, context):
        try:
            servable = _resolve(self.manager, request.model_spec)
            values = servable.regress(request.model_spec.signature_name, examples_from_input(request.input))
            resp = regression_pb2.RegressionResponse()
            _fill_spec(resp.model_spec, servable, request.model_spec.signature_name)
            for v in values:
                resp.result.regressions.add(value=v)
            return resp
        except ServingError as err:
            _abort(context, err)

    def GetModelMetadata(self, request, context):
        try:
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
        except ServingError as err:
            _abort(context, err)

    def MultiInference(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not implemented by the local server")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            spec = request.model_spec
            if not spec.name:
                raise invalid("ModelSpec has no name specified.")
            version = spec.version.value if spec.HasField("version") else None
            return status_response(self.manager, spec.name, version)
        except ServingError as err:
            _abort(context, err)

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not implemented by the local server")


class GrpcServer:
    """``grpc.server`` with a thread pool (TF releases the GIL inside ops)."""

    def __init__(self, manager, host: str = "127.0.0.1", port: int = 0, max_workers: int = 16,
                 max_request_bytes: int = 2**31 - 1, interceptors=()):
        self.manager = manager
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            interceptors=tuple(interceptors),  # e.g. serving.metrics.MetricsInterceptor
            options=[("grpc.max_receive_message_length", max_request_bytes),
                     ("grpc.max_send_message_length", 2**31 - 1),
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(manager), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), self.server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot bind gRPC to {address}")

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float = 10.0) -> None:
        """Reject new RPCs, let in-flight ones finish within ``grace`` seconds."""
        self.server.stop(grace).wait(grace + 5)


__all__ = ["GrpcServer", "PredictionServicer", "ModelServicer"]
