"""--enable_batching: concurrent Predicts merged into one signature call, answers unchanged."""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from serving.batching import BatchingParameters, BatchScheduler, parse_batching_parameters
from serving.errors import Code, ServingError

# ------------------------------------------------------------------------------------------------
# Parameters file and flags


def test_parameters_file_is_tf_servings_text_proto():
    p = parse_batching_parameters("""
        max_batch_size { value: 128 }
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 1000000 }
        num_batch_threads { value: 8 }
        thread_pool_name { value: "pool" }
        allowed_batch_sizes: 32
        allowed_batch_sizes: 128
    """)
    assert p == BatchingParameters(max_batch_size=128, batch_timeout_micros=500, max_enqueued_batches=1000000,
                                   num_batch_threads=8, allowed_batch_sizes=(32, 128), thread_pool_name="pool")
    assert parse_batching_parameters("") == BatchingParameters()
    assert BatchingParameters().max_batch_size == 1000 and BatchingParameters().batch_timeout_micros == 0


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2", "monotonically increasing"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "final entry in allowed_batch_sizes"),
    ("max_batch_size { value: 0 }", "max_batch_size must be positive"),
    ("max_batch_sise { value: 8 }", "Error parsing text-format tensorflow.serving.BatchingParameters"),
    ("max_batch_size: 8", "Error parsing text-format"),
    ("pad_variable_length_inputs: true", "not supported"),
])
def test_bad_parameters_files_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_batching_parameters(text)


def test_flags_named_as_tensorflow_model_servers(tmp_path):
    import argparse

    from serving.server_flags import add_server_flags, server_from_args

    parser = argparse.ArgumentParser()
    add_server_flags(parser)
    base = ["--model_name=m", "--model_base_path=/nowhere"]
    assert parser.parse_args(base).enable_batching is False
    assert parser.parse_args(base + ["--enable_batching"]).enable_batching is True
    assert parser.parse_args(base + ["--enable_batching=false"]).enable_batching is False
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 100 }\n")
    args = parser.parse_args(base + ["--enable_batching=true", f"--batching_parameters_file={params}"])
    server = server_from_args(args)
    assert server.batching_parameters == BatchingParameters(max_batch_size=16, batch_timeout_micros=100)
    assert server_from_args(parser.parse_args(base)).batching_parameters is None
    assert server_from_args(parser.parse_args(base + ["--enable_batching"])).batching_parameters == \
        BatchingParameters()


def test_serve_refuses_a_bad_parameters_file(tmp_path, capsys):
    from serving.server_flags import main

    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: -1 }")
    assert main(["--model_name=m", f"--model_base_path={tmp_path}", "--enable_batching",
                 f"--batching_parameters_file={params}"]) == 1
    assert "max_batch_size must be positive" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# The scheduler on a fake servable (y = 2x + 1 per row; a row < 0 makes the whole call fail)


class FakeServable:
    name = "fake"

    def __init__(self, delay: float = 0.0, scalar_output: bool = False):
        self.calls: list[int] = []
        self.delay, self.scalar_output = delay, scalar_output
        self.unbatchable: set[str] = set()
        self.lock = threading.Lock()

    def run_signature(self, key, inputs):
        x = inputs["x"]
        with self.lock:
            self.calls.append(len(x))
        time.sleep(self.delay)
        if (x < 0).any():
            raise ServingError(Code.INVALID_ARGUMENT, f"negative input {x[x < 0][0]:g}")
        out = {"y": 2 * x + 1}
        if self.scalar_output:
            out["total"] = np.float32(x.sum())
        return out


def _submit_all(scheduler, servable, values, rows=1):
    futures = [scheduler.submit(servable, "serving_default", {"x": np.full((rows, 1), v, np.float32)}, rows)
               for v in values]
    return futures


def test_concurrent_requests_are_merged_and_split_back():
    servable = FakeServable(delay=0.02)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=8, num_batch_threads=1))
    try:
        futures = _submit_all(scheduler, servable, range(20))
        for v, f in zip(range(20), futures):
            assert f.result(10)["y"].tolist() == [[2.0 * v + 1]]
    finally:
        scheduler.stop()
    assert max(servable.calls) > 1 and max(servable.calls) <= 8 and sum(servable.calls) == 20
    assert scheduler.stats["requests"] == 20 and scheduler.stats["largest_batch"] == max(servable.calls)


def test_one_bad_request_does_not_poison_its_batch():
    servable = FakeServable(delay=0.02)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=16, num_batch_threads=1,
                                                  batch_timeout_micros=50_000))
    try:
        values = [1, 2, -3, 4, 5, -6, 7]
        futures = _submit_all(scheduler, servable, values)
        for v, f in zip(values, futures):
            if v < 0:
                with pytest.raises(ServingError, match=f"negative input {v}"):
                    f.result(10)
            else:
                assert f.result(10)["y"].tolist() == [[2.0 * v + 1]]
    finally:
        scheduler.stop()
    assert servable.calls[0] == len(values)   # merged first, then re-run one by one


def test_allowed_batch_sizes_pad_and_results_stay_per_request():
    servable = FakeServable(delay=0.0)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=8, allowed_batch_sizes=(4, 8),
                                                  num_batch_threads=1, batch_timeout_micros=100_000))
    try:
        futures = _submit_all(scheduler, servable, [1, 2, 3], rows=2)   # 6 rows → padded to 8
        for v, f in zip([1, 2, 3], futures):
            assert f.result(10)["y"].tolist() == [[2.0 * v + 1]] * 2
    finally:
        scheduler.stop()
    assert servable.calls == [8]


def test_too_large_and_queue_full_are_tf_servings_errors():
    servable = FakeServable(delay=0.3)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1))
    try:
        with pytest.raises(ServingError, match="Task size 3 is larger than maximum input batch size 2") as err:
            _submit_all(scheduler, servable, [1], rows=3)
        assert err.value.code == Code.INVALID_ARGUMENT
        first = _submit_all(scheduler, servable, [1])          # taken by the only thread
        time.sleep(0.1)
        queued = _submit_all(scheduler, servable, [2, 3])      # one full batch waiting
        with pytest.raises(ServingError, match="batch scheduling queue to which this task was submitted is full") \
                as err:
            _submit_all(scheduler, servable, [4])
        assert err.value.code == Code.UNAVAILABLE
        assert [f.result(10)["y"][0, 0] for f in first + queued] == [3.0, 5.0, 7.0]
    finally:
        scheduler.stop()


def test_output_without_batch_dimension_runs_unbatched():
    servable = FakeServable(delay=0.02, scalar_output=True)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=8, num_batch_threads=1,
                                                  batch_timeout_micros=50_000))
    try:
        futures = _submit_all(scheduler, servable, [1, 2, 3])
        assert [float(f.result(10)["total"]) for f in futures] == [1.0, 2.0, 3.0]
    finally:
        scheduler.stop()
    assert "serving_default" in servable.unbatchable


# ------------------------------------------------------------------------------------------------
# A real server with batching on: REST and gRPC under concurrent distinct requests


@pytest.fixture(scope="module")
def batching_server(model_base):
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    base = model_base["base"]
    configs = [ModelConfig("half_plus_two", str(base / "half_plus_two")),
               ModelConfig("keyword_ctr", str(base / "keyword_ctr"))]
    params = BatchingParameters(max_batch_size=32, batch_timeout_micros=2000, num_batch_threads=1)
    srv = ModelServer(configs, file_system_poll_wait_seconds=0, enable_batching=True,
                      batching_parameters=params).start()
    yield srv
    srv.stop()


def _unbatched_rest(rest_url, model, body):
    return requests.post(f"{rest_url}/v1/models/{model}:predict", data=json.dumps(body), timeout=10)


def test_rest_concurrent_distinct_requests_match_unbatched(batching_server, rest_url, model_base):
    import toy_models

    url = f"http://127.0.0.1:{batching_server.rest_api_port}/v1/models"
    raw = toy_models.keyword_ctr_requests(64, seed=11)
    rows = [{k: (int(v[i]) if k == "hour" else str(v[i])) for k, v in raw.items()} for i in range(64)]
    bad = {5: {"instances": [{**rows[5], "hour": "noon"}]},                  # wrong JSON type
           17: {"instances": [{k: v for k, v in rows[17].items() if k != "ad_id"}]},   # missing input
           40: {"inputs": {**{k: [v] for k, v in rows[40].items()}, "hour": [[1, 2]]}}}  # wrong rank

    def body(i):
        return bad.get(i) or {"instances": [rows[i]]}

    def call(i):
        with requests.Session() as s:
            return i, s.post(f"{url}/keyword_ctr:predict", data=json.dumps(body(i)), timeout=30)

    before = batching_server._batcher.stats["batches"], batching_server._batcher.stats["requests"]
    with ThreadPoolExecutor(16) as pool:
        answers = dict(pool.map(call, range(64)))
    for i in range(64):
        expected = _unbatched_rest(rest_url, "keyword_ctr", body(i))    # the session server: no batching
        got = answers[i]
        assert got.status_code == expected.status_code, (i, got.text, expected.text)
        if got.status_code == 200:
            np.testing.assert_allclose(got.json()["predictions"], expected.json()["predictions"], atol=1e-6)
        else:   # the same message; only TF's function id (two loads of the model) differs
            strip = lambda e: re.sub(r"__inference_\w+", "", e["error"])  # noqa: E731
            assert strip(got.json()) == strip(expected.json())
    # and the batched answers equal the model itself
    model_out = model_base["keyword_ctr_model"]({k: np.asarray(v) for k, v in raw.items()},
                                                training=False)["p_click"].numpy()
    for i in set(range(64)) - set(bad):
        np.testing.assert_allclose(np.reshape(answers[i].json()["predictions"], -1), model_out[i:i + 1].reshape(-1),
                                   atol=1e-6)
    batches, requests_run = (batching_server._batcher.stats["batches"] - before[0],
                             batching_server._batcher.stats["requests"] - before[1])
    assert requests_run == 64 - 3        # 2 fail before queueing; the wrong-rank one runs unbatched (TF error)
    assert batches < requests_run        # some requests really were merged


def test_grpc_concurrent_distinct_requests_match(batching_server):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.tensor_proto import ndarray_to_tensor_proto

    xs = np.arange(48, dtype=np.float32).reshape(-1, 1, 1) / 4.0   # 48 requests, distinct x, 1 row each
    before = batching_server._batcher.stats["batches"], batching_server._batcher.stats["requests"]
    with grpc.insecure_channel(f"127.0.0.1:{batching_server.port}") as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)

        def call(i):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "half_plus_two"
            req.inputs["x"].CopyFrom(ndarray_to_tensor_proto(xs[i] if i != 7 else xs[i].astype(np.float64)))
            if i == 9:
                req.output_filter.append("y")
            try:
                resp = stub.Predict(req, timeout=30)
            except grpc.RpcError as err:
                return i, err.code(), err.details()
            return i, resp.model_spec.version.value, list(resp.outputs["y"].float_val)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(call, range(48)))
    for i, a, b in answers:
        if i == 7:
            assert a == grpc.StatusCode.INVALID_ARGUMENT and "Expects arg[x] to be float32 but float64 is provided" in b
        else:
            assert (a, b) == (123, [0.5 * float(xs[i, 0, 0]) + 2.0])
    batches, requests_run = (batching_server._batcher.stats["batches"] - before[0],
                             batching_server._batcher.stats["requests"] - before[1])
    assert requests_run == 48 - 1        # the float64 one fails its dtype check before queueing
    assert batches < requests_run        # gRPC requests waiting in their threads were merged


def test_rest_batched_multi_row_requests_and_columnar(batching_server):
    url = f"http://127.0.0.1:{batching_server.rest_api_port}/v1/models/half_plus_two:predict"

    def call(i):
        n = 1 + i % 4
        xs = [[float(i * 10 + j)] for j in range(n)]
        body = {"instances": xs} if i % 2 else {"inputs": {"x": xs}}
        r = requests.post(url, data=json.dumps(body), timeout=30)
        key = "predictions" if i % 2 else "outputs"
        return r.status_code, r.json()[key], [[0.5 * x[0] + 2] for x in xs]

    with ThreadPoolExecutor(12) as pool:
        for status, got, want in pool.map(call, range(36)):
            assert status == 200 and got == want


def test_a_cancelled_request_is_dropped_without_failing_its_batch():
    servable = FakeServable(delay=0.2)
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=8, num_batch_threads=1))
    try:
        first = _submit_all(scheduler, servable, [1])            # occupies the only thread
        time.sleep(0.05)
        queued = _submit_all(scheduler, servable, [2, 3, 4])
        assert queued[1].cancel()                                # e.g. the REST deadline passed
        assert first[0].result(10)["y"].tolist() == [[3.0]]
        assert [f.result(10)["y"].tolist() for f in (queued[0], queued[2])] == [[[5.0]], [[9.0]]]
    finally:
        scheduler.stop()
    assert servable.calls == [1, 2]
