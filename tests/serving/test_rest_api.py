"""The local server's REST API against TFSERVING_CONTRACT.md (half_plus_two + keyword_ctr)."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import requests


def post(url, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(url, data=data, timeout=10, **kw)


def test_predict_row_and_columnar_half_plus_two(rest_url):
    r = post(f"{rest_url}/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.status_code == 200 and r.json() == {"predictions": [2.5, 3.0, 4.5]}
    assert r.headers["Content-Type"].startswith("application/json")
    r = post(f"{rest_url}/v1/models/half_plus_two:predict", {"inputs": {"x": [[1.0], [2.0]]}})
    assert r.json() == {"outputs": [[2.5], [3.0]]}
    r = post(f"{rest_url}/v1/models/half_plus_two/versions/123:predict", {"instances": [[1.0]]})
    assert r.json() == {"predictions": [[2.5]]}
    r = post(f"{rest_url}/v1/models/half_plus_two/labels/stable:predict", {"inputs": [[4.0]]})
    assert r.json() == {"outputs": [[4.0]]}


def test_regress_and_classify_signatures(rest_url):
    url = f"{rest_url}/v1/models/half_plus_two"
    r = post(url + ":regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]})
    assert r.status_code == 200 and r.text.replace(" ", "") == '{"results":[42.0]}'
    r = post(url + ":regress", {"signature_name": "regress_x_to_y2", "examples": [{"x": 80.0}]})
    assert r.json() == {"results": [43.0]}
    r = post(url + ":regress", {"signature_name": "regress_x2_to_y3", "examples": [{"x2": 80.0}]})
    assert r.json() == {"results": [43.0]}
    r = post(url + ":classify", {"signature_name": "classify_x_to_y", "examples": [{"x": -1.0}]})
    assert r.json() == {"results": [[["", 1.5]]]}
    r = post(url + ":classify", {"signature_name": "classify_x2_to_y3",
                                 "context": {"x2": 10.0}, "examples": [{"x": 1.0}, {"x2": 2.0}]})
    assert r.json() == {"results": [[["", 8.0]], [["", 4.0]]]}
    # serving_default has x, not inputs: not a regression signature
    r = post(url + ":regress", {"examples": [{"x": 1.0}]})
    assert r.status_code == 400 and "No classification inputs found in SignatureDef" in r.json()["error"]


def test_model_status_and_metadata(rest_url):
    r = requests.get(f"{rest_url}/v1/models/half_plus_two", timeout=10)
    assert r.json() == {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(f"{rest_url}/v1/models/half_plus_two/labels/whatever", timeout=10).status_code == 200
    r = requests.get(f"{rest_url}/v1/models/half_plus_two/versions/124", timeout=10)
    assert r.status_code == 404 and r.json() == {"error": "Could not find version 124 of model half_plus_two"}
    r = requests.get(f"{rest_url}/v1/models/nope", timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "Could not find any versions of model nope"
    meta = requests.get(f"{rest_url}/v1/models/half_plus_two/metadata", timeout=10).json()
    assert meta["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"serving_default", "regress_x_to_y", "regress_x_to_y2", "regress_x2_to_y3",
                         "classify_x_to_y", "classify_x2_to_y3", "__saved_model_init_op"}
    x = sigs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
                                 "unknown_rank": False}
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    r = requests.get(f"{rest_url}/v1/models/half_plus_two/labels/nolabel/metadata", timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "Unrecognized servable version label: nolabel"


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/v1/models/half_plus_two:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/half_plus_two:predict", "instances = [1, 2]", 400, "JSON Parse error: Invalid value."),
    ("POST", "/v1/models/half_plus_two:predict", "[1]", 400, "Is not object"),
    ("POST", "/v1/models/half_plus_two:predict", '{"instances": [[1.0], [2.0, 3.0]]}', 400,
     "Expecting tensor size: 1 but got: 2"),
    ("POST", "/v1/models/half_plus_two:predict", '{"instances": ["a"]}', 400,
     "Type: String is not of expected type: float"),
    ("POST", "/v1/models/half_plus_two:predict", '{"instances": [1], "signature_name": 5}', 400,
     "'signature_name' key must be a string value."),
    ("POST", "/v1/models/half_plus_two:predict", '{"instances": [1], "signature_name": "nope"}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/unknown:predict", '{"instances": [1]}', 404,
     "Servable not found for request: Latest(unknown)"),
    ("POST", "/v1/models/half_plus_two/versions/50:predict", '{"instances": [1]}', 404,
     "Servable not found for request: Specific(half_plus_two, 50)"),
    ("POST", "/v1/models/half_plus_two/labels/x:predict", '{"instances": [1]}', 400,
     "Unrecognized servable version label: x"),
    ("POST", "/v1/models/half_plus_two:predict?x=1", '{"instances": [1]}', 400, "Malformed request: POST"),
    ("PUT", "/v1/models/half_plus_two:predict", '{"instances": [1]}', 400, "Malformed request: PUT"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("POST", "/v1/models/half_plus_two/versions/99999999999999999999:predict", "{}", 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("POST", "/v1/models/keyword_ctr:predict", '{"instances": [{"user_id": "u1"}]}', 400,
     "keys must be equal to: ad_id,hour,query,selling_point,user_id"),
    ("POST", "/v1/models/keyword_ctr:predict", '{"inputs": {"user_id": ["u1"]}}', 400,
     "Missing named input: ad_id in 'inputs' object."),  # first missing, sorted
    ("POST", "/v1/models/keyword_ctr:predict",
     '{"inputs": {"user_id": ["u1"], "query": ["q"], "ad_id": ["a"], "selling_point": ["s"], "hour": [1.5]}}',
     400, "is not of expected type: int64"),
    ("POST", "/v1/models/half_plus_two:classify", '{"signature_name": "classify_x_to_y"}', 400,
     "key 'examples' is expected and was not found"),
])
def test_bad_requests_get_tf_serving_status_and_error_body(rest_url, method, path, body, status, message):
    r = requests.request(method, rest_url + path, data=body, timeout=10)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_non_v1_paths_are_html_404_and_server_keeps_serving(rest_url):
    r = requests.get(f"{rest_url}/healthz", timeout=10)
    assert r.status_code == 404 and "<HTML>" in r.text
    r = post(f"{rest_url}/v1/models/half_plus_two:predict", {"instances": [1.0]})
    assert r.json() == {"predictions": [2.5]}


def test_oversized_body_is_rejected_with_json_error(rest_url):
    big = json.dumps({"instances": [1.0] * 400_000})  # > the 1 MiB limit of the test server
    r = post(f"{rest_url}/v1/models/half_plus_two:predict", big)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    assert post(f"{rest_url}/v1/models/half_plus_two:predict", {"instances": [2.0]}).json() == {
        "predictions": [3.0]}


def test_gzip_body_and_percent_encoded_names(rest_url):
    body = gzip.compress(json.dumps({"instances": [3.0]}).encode())
    r = requests.post(f"{rest_url}/v1/models/half_plus_two:predict", data=body,
                      headers={"Content-Encoding": "gzip"}, timeout=10)
    assert r.json() == {"predictions": [3.5]}
    r = requests.post(f"{rest_url}/v1/models/half%5Fplus%5Ftwo:predict", data='{"instances": [0.0]}', timeout=10)
    assert r.json() == {"predictions": [2.0]}


def test_keyword_ctr_rest_row_columnar_b64_equal_in_process(rest_url, model_base):
    import tensorflow as tf

    import toy_models

    sigs = model_base["keyword_ctr_signatures"]
    raw = toy_models.keyword_ctr_requests(5, seed=11)
    expected = sigs["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})["p_click"].numpy()
    instances = [{k: (v[i] if k != "hour" else int(v[i])) for k, v in raw.items()} for i in range(5)]
    row = post(f"{rest_url}/v1/models/keyword_ctr:predict", {"instances": instances}).json()["predictions"]
    np.testing.assert_allclose(row, expected, atol=1e-6)
    b64 = [{**inst, "user_id": {"b64": __import__("base64").b64encode(inst["user_id"].encode()).decode()}}
           for inst in instances]
    np.testing.assert_allclose(post(f"{rest_url}/v1/models/keyword_ctr:predict",
                                    {"instances": b64}).json()["predictions"], expected, atol=1e-6)
    columnar = {k: (v.tolist() if k == "hour" else list(v)) for k, v in raw.items()}
    out = post(f"{rest_url}/v1/models/keyword_ctr:predict", {"inputs": columnar}).json()["outputs"]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # classify / regress over the same rows as tf.Examples
    examples = [{k: v for k, v in inst.items()} for inst in instances]
    reg = post(f"{rest_url}/v1/models/keyword_ctr:regress",
               {"signature_name": "regress", "examples": examples}).json()["results"]
    np.testing.assert_allclose(reg, expected, atol=1e-6)
    cls = post(f"{rest_url}/v1/models/keyword_ctr:classify",
               {"signature_name": "classify", "examples": examples}).json()["results"]
    assert [c[1][0] for c in cls] == ["1"] * 5
    np.testing.assert_allclose([c[1][1] for c in cls], expected, atol=1e-6)


def test_select_selling_points_over_rest(rest_url, model_base):
    import tensorflow as tf

    import toy_models

    inputs = toy_models.select_request(2, seed=4)
    expected = model_base["keyword_ctr_signatures"]["select_selling_points"](
        **{k: tf.constant(v) for k, v in inputs.items()})
    body = {"signature_name": "select_selling_points",
            "inputs": {k: v.tolist() for k, v in inputs.items()}}
    out = post(f"{rest_url}/v1/models/keyword_ctr:predict", body).json()["outputs"]
    np.testing.assert_allclose(np.array(out["scores"], dtype=np.float32), expected["scores"].numpy(), atol=1e-6)
    assert out["top_k_selling_points"] == [[s.decode() for s in row]
                                           for row in expected["top_k_selling_points"].numpy()]
