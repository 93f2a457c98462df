"""serving.client: RestClient and GrpcClient give the same answers through one API."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import tensorflow as tf

import toy_models
from serving.client import GrpcClient, RestClient
from serving.errors import Code, ServingError


@pytest.fixture(scope="module", params=["rest", "grpc"])
def client(request, rest_url, grpc_target):
    if request.param == "rest":
        c = RestClient(rest_url, "keyword_ctr", timeout=10)
    else:
        c = GrpcClient(grpc_target, "keyword_ctr", timeout=10)
    yield c
    c.close()


def test_predict_equals_in_process(client, model_base):
    raw = toy_models.keyword_ctr_requests(7, seed=8)
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    out = client.predict(raw)
    assert set(out) == {"p_click"} and out["p_click"].dtype == np.float32
    np.testing.assert_allclose(out["p_click"], expected, atol=1e-6)


def test_classify_regress_status_metadata(client, model_base):
    raw = toy_models.keyword_ctr_requests(3, seed=9)
    expected = model_base["keyword_ctr_signatures"]["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    examples = [{k: (v[i] if k != "hour" else int(v[i])) for k, v in raw.items()} for i in range(3)]
    np.testing.assert_allclose(client.regress(examples, signature_name="regress"), expected, atol=1e-6)
    cls = client.classify(examples, signature_name="classify")
    np.testing.assert_allclose([row[1][1] for row in cls], expected, atol=1e-6)
    assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
    meta = client.metadata()
    assert meta["select_selling_points"]["outputs"]["top_k_selling_points"] == "DT_STRING"
    assert meta["serving_default"]["inputs"]["hour"] == "DT_INT64"


def test_select_selling_points(client, model_base):
    from tfrs_models.selling_point.export import select_request

    request = select_request({"user_id": "u2", "query": "phone case", "ad_id": "ad_12", "hour": 20},
                             ["waterproof", "free shipping", "50% off", "new arrival"])
    out = client.predict(request, "select_selling_points")
    inputs = {"user_id": np.array(["u2"], object), "query": np.array(["phone case"], object),
              "ad_id": np.array(["ad_12"], object), "hour": np.array([20]),
              "candidate_selling_points": np.array([["waterproof", "free shipping", "50% off", "new arrival"]],
                                                   object)}
    assert {k: v.tolist() for k, v in request.items()} == {k: v.tolist() for k, v in inputs.items()}
    expected = model_base["keyword_ctr_signatures"]["select_selling_points"](
        **{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_allclose(out["scores"], expected["scores"].numpy(), atol=1e-6)
    assert out["top_k_selling_points"].tolist() == expected["top_k_selling_points"].numpy().tolist()


def test_errors_raise_serving_error_with_code(rest_url, grpc_target):
    for c in (RestClient(rest_url, "nope", retries=0), GrpcClient(grpc_target, "nope", retries=0)):
        with pytest.raises(ServingError) as err:
            c.predict({"x": np.array([[1.0]], np.float32)})
        assert err.value.code == Code.NOT_FOUND and "Latest(nope)" in err.value.message
        c.close()


def test_unavailable_is_retried_with_backoff():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here
    c = GrpcClient(f"127.0.0.1:{port}", "m", timeout=1, retries=2, backoff=0.01)
    calls = []
    original = c._predict.Predict

    def counting(*a, **kw):
        calls.append(1)
        return original(*a, **kw)

    c._predict.Predict = counting
    with pytest.raises(ServingError) as err:
        c.predict({"x": np.array([1.0], np.float32)})
    assert err.value.code == Code.UNAVAILABLE and len(calls) == 3
    c.close()


def test_concurrent_clients_get_their_own_answers(rest_url, grpc_target):
    errors, done = [], []

    def worker(i):
        c = RestClient(rest_url, "half_plus_two") if i % 2 else GrpcClient(grpc_target, "half_plus_two")
        try:
            for j in range(15):
                x = float(i * 100 + j)
                y = c.predict({"x": np.array([[x]], np.float32)})["y"]
                if y.tolist() != [[0.5 * x + 2]]:
                    errors.append((x, y))
            done.append(i)
        except Exception as err:  # noqa: BLE001
            errors.append(err)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(done) == 8
