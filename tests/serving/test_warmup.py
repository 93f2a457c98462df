"""serving.warmup: the warm-up file is a TFRecord of PredictionLog, as TF Serving reads it."""
from __future__ import annotations

from serving.warmup import read_warmup_requests


def test_warmup_file_is_a_tfrecord_of_prediction_logs(model_base):
    logs = read_warmup_requests(model_base["base"] / "half_plus_two" / "123")
    assert len(logs) == 1
    req = logs[0].predict_log.request
    assert req.model_spec.signature_name == "serving_default"
    assert list(req.inputs["x"].float_val) == [1.0, 2.0]
    logs = read_warmup_requests(model_base["keyword_ctr_path"])
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default", "select_selling_points"]
