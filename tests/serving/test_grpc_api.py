"""The local server's gRPC PredictionService / ModelService (TFSERVING_CONTRACT.md §5)."""
from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)


@pytest.fixture(scope="module")
def stubs(grpc_target):
    channel = grpc.insecure_channel(grpc_target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def _predict_request(name="half_plus_two", signature="", **inputs):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    return req


def test_predict_typed_fields_and_resolved_spec(stubs):
    predict, _ = stubs
    resp = predict.Predict(_predict_request(x=np.array([[1.0], [2.0]], np.float32)), timeout=10)
    y = resp.outputs["y"]
    assert list(y.float_val) == [2.5, 3.0] and not y.tensor_content
    assert [d.size for d in y.tensor_shape.dim] == [2, 1]
    assert resp.model_spec.signature_name == "serving_default"
    assert resp.model_spec.version.value == 123


def test_classify_regress_metadata_status(stubs):
    predict, model = stubs
    req = regression_pb2.RegressionRequest()
    req.model_spec.name, req.model_spec.signature_name = "half_plus_two", "regress_x_to_y"
    ex = req.input.example_list.examples.add()
    ex.features.feature["x"].float_list.value.append(80.0)
    assert [r.value for r in predict.Regress(req, timeout=10).result.regressions] == [42.0]
    creq = classification_pb2.ClassificationRequest()
    creq.model_spec.name, creq.model_spec.signature_name = "half_plus_two", "classify_x_to_y"
    creq.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    resp = predict.Classify(creq, timeout=10)
    assert [(c.label, c.score) for c in resp.result.classifications[0].classes] == [("", 3.0)]
    assert resp.model_spec.signature_name == "classify_x_to_y"

    mreq = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    mreq.model_spec.name = "half_plus_two"
    sdm = get_model_metadata_pb2.SignatureDefMap()
    predict.GetModelMetadata(mreq, timeout=10).metadata["signature_def"].Unpack(sdm)
    assert "regress_x2_to_y3" in sdm.signature_def

    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "half_plus_two"
    st = model.GetModelStatus(sreq, timeout=10).model_version_status
    assert [(v.version, v.state) for v in st] == [(123, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


@pytest.mark.parametrize("req, code, message", [
    (_predict_request(name="nope", x=np.array([[1.0]], np.float32)), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    (_predict_request(name="", x=np.array([[1.0]], np.float32)), grpc.StatusCode.INVALID_ARGUMENT,
     "ModelSpec has no name specified."),
    (_predict_request(signature="nope", x=np.array([[1.0]], np.float32)), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    # same count, wrong alias: saved_model/util.cc GetInputValues, not the size check
    (_predict_request(z=np.array([[1.0]], np.float32)), grpc.StatusCode.INVALID_ARGUMENT,
     "Signature input alias: x(feed name: serving_default_x:0) not found in request and no default value "
     "provided. Inputs expected to be in the request {z}, or default input alias set: "),
    (_predict_request(x=np.array([[1.0]], np.float32), z=np.array([[1.0]], np.float32)),
     grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}."),
    (_predict_request(x=np.array([["a"]])), grpc.StatusCode.INVALID_ARGUMENT, "string"),
])
def test_predict_errors(stubs, req, code, message):
    predict, _ = stubs
    with pytest.raises(grpc.RpcError) as err:
        predict.Predict(req, timeout=10)
    assert err.value.code() == code
    assert message in err.value.details()


def test_keyword_ctr_grpc_equals_in_process(stubs, model_base):
    import toy_models

    predict, _ = stubs
    raw = toy_models.keyword_ctr_requests(6, seed=21)
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    resp = predict.Predict(_predict_request("keyword_ctr", **raw), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["p_click"]), expected, atol=1e-6)


def test_server_entry_point_has_grpc_do_its_io_on_the_polling_thread():
    from serving.server_flags import GRPC_EXPERIMENTS, prefer_polling_thread_io

    environ = {}
    assert prefer_polling_thread_io(environ, modules={}) and environ == {"GRPC_EXPERIMENTS": "-event_engine_listener"}
    assert GRPC_EXPERIMENTS == "-event_engine_listener"
    chosen = {"GRPC_EXPERIMENTS": "event_engine_listener"}          # the operator's choice stands
    assert not prefer_polling_thread_io(chosen, modules={}) and chosen == {"GRPC_EXPERIMENTS": "event_engine_listener"}
    late = {}                                                        # grpc read the variable already
    assert not prefer_polling_thread_io(late, modules={"grpc": grpc}) and late == {}
