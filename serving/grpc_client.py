"""``GrpcClient``: TF Serving's gRPC ``PredictionService`` / ``ModelService`` (tensorflow-serving-api
stubs), returning numpy arrays."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from serving.client_base import Client, Retry
from serving.errors import Code, ServingError


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


class GrpcClient(Client):
    """TF Serving gRPC client (``PredictionService`` / ``ModelService`` stubs)."""

    def __init__(self, target: str, model_name: str, timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.1, max_message_bytes: int = 256 << 20):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.target, self.model_name, self.timeout = target, model_name, timeout
        self._retry = Retry(retries, backoff)
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
