"""The warm-up file of a version: ``assets.extra/tf_serving_warmup_requests``, a TFRecord of
``PredictionLog`` that the server replays before a version is switched on (as TF Serving does).

TensorFlow is imported lazily: importing this module is cheap.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from adpush_core.tfenv import import_tensorflow
from serving.errors import ExportError

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


def predict_request(model_name: str, signature_name: str, inputs: Mapping[str, Any]):
    """A ``PredictRequest`` whose inputs are the given arrays (typed TensorProtos)."""
    from tensorflow_serving.apis import predict_pb2

    from serving.tensor_proto import ndarray_to_tensor_proto

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model_name
    req.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        req.inputs[key].CopyFrom(ndarray_to_tensor_proto(np.asarray(value)))
    return req


def write_warmup_requests(export_dir: str | os.PathLike, requests: Sequence[Any], model_name: str = "") -> Path:
    """Write ``export_dir/assets.extra/tf_serving_warmup_requests`` (TFRecord of PredictionLog)."""
    tf = import_tensorflow()
    from tensorflow_serving.apis import (classification_pb2, prediction_log_pb2, predict_pb2,
                                         regression_pb2)

    if len(requests) > MAX_WARMUP_RECORDS:
        raise ExportError(f"{len(requests)} warm-up requests; TF Serving accepts at most {MAX_WARMUP_RECORDS}")
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for req in requests:
            if isinstance(req, tuple):
                req = predict_request(model_name, req[0], req[1])
            if isinstance(req, predict_pb2.PredictRequest):
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=req))
            elif isinstance(req, classification_pb2.ClassificationRequest):
                log = prediction_log_pb2.PredictionLog(
                    classify_log=prediction_log_pb2.ClassifyLog(request=req))
            elif isinstance(req, regression_pb2.RegressionRequest):
                log = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=req))
            else:
                raise ExportError(f"unsupported warm-up request type {type(req).__name__}")
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir: str | os.PathLike) -> list[Any]:
    """The ``PredictionLog`` records of a version's warm-up file ([] when there is none)."""
    tf = import_tensorflow()
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / WARMUP_FILE
    if not path.exists():
        return []
    logs = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
        if i >= MAX_WARMUP_RECORDS:
            raise ExportError(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}")
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs
