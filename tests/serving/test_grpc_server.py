"""The gRPC server's own loop (serving/grpc_service.py): grpc.server's answers to calls that never
reach a handler, where requests run (the polling thread or the pool), and --busy_poll_us
(its window: tests/serving/test_idle_poll.py)."""
from __future__ import annotations

import os
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2

from serving.client import GrpcClient, RestClient
from serving.manager import ModelConfig
from serving.server import ModelServer
from serving.server_process import ServerProcess

from tests.serving.test_shutdown import _slow_model

PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def channel(grpc_target):
    ch = grpc.insecure_channel(grpc_target)
    yield ch
    ch.close()


def test_an_unknown_method_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/tensorflow.serving.PredictionService/Nope")(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.value.details() == "Method not found!"


def test_a_call_without_its_request_message_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as err:
        channel.stream_unary(PREDICT)(iter(()), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.value.details() == f'"{PREDICT}" requires exactly one request message.'


def test_an_undecodable_request_is_internal_and_the_server_keeps_serving(channel):
    with pytest.raises(grpc.RpcError) as err:
        channel.unary_unary(PREDICT)(b"\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "Exception deserializing request!"
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    req.inputs["x"].dtype = 1
    req.inputs["x"].tensor_shape.dim.add().size = 1
    req.inputs["x"].float_val.append(4.0)
    reply = predict_pb2.PredictResponse.FromString(channel.unary_unary(PREDICT)(req.SerializeToString(), timeout=10))
    assert list(reply.outputs["y"].float_val) == [4.0]


@pytest.fixture(scope="module")
def slow_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("slow_grpc")
    _slow_model(base)
    return base


def _two_concurrent_seconds(server) -> float:
    """Wall time of two concurrent 1-second gRPC predicts on the slow model."""
    clients = [GrpcClient(f"127.0.0.1:{server.port}", "slow", retries=0, timeout=60) for _ in range(2)]
    for c in clients:
        c.predict({"n": np.array([1], np.int32)})
    t = time.perf_counter()
    threads = [threading.Thread(target=c.predict, args=({"n": np.array([1000], np.int32)},)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    seconds = time.perf_counter() - t
    for c in clients:
        c.close()
    return seconds


def test_requests_run_on_the_polling_thread_or_in_the_pool(slow_base):
    """Inline (the default), a small request runs on the polling thread: two 1-s calls take 2 s.
    --grpc_inline_requests=false runs each in the pool: they overlap (TF releases the GIL)."""
    configs = [ModelConfig("slow", str(slow_base / "slow"))]
    with ModelServer(configs, file_system_poll_wait_seconds=0, enable_model_warmup=False, rest_api_port=None) as s:
        inline = _two_concurrent_seconds(s)
    with ModelServer(configs, file_system_poll_wait_seconds=0, enable_model_warmup=False, rest_api_port=None,
                     grpc_inline=False) as s:
        pooled = _two_concurrent_seconds(s)
    assert inline >= 1.9, inline
    assert pooled < 1.7, pooled


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("busy_poll_us", [None, 20000])
def test_idle_polling_answers_the_same_and_stops_when_idle(model_base, busy_poll_us):
    """--busy_poll_us (on by default; and a window far longer than a request's gap): both APIs
    answer as without it, and once the requests stop the loops sleep again (no CPU burnt while
    idle)."""
    x = np.array([[1.0], [6.0]], np.float32)
    flags = {} if busy_poll_us is None else {"busy_poll_us": busy_poll_us}
    with ServerProcess(model_name="half_plus_two", model_base_path=str(model_base["base"] / "half_plus_two"),
                       file_system_poll_wait_seconds=0, **flags) as proc:
        rest = RestClient(proc.rest_url, "half_plus_two", retries=0)
        grpc_c = GrpcClient(proc.grpc_target, "half_plus_two", retries=0)
        for _ in range(50):
            np.testing.assert_allclose(rest.predict({"x": x})["y"], [[2.5], [5.0]])
            np.testing.assert_allclose(grpc_c.predict({"x": x})["y"], [[2.5], [5.0]])
        time.sleep(0.2)
        before = _cpu_seconds(proc.proc.pid)
        time.sleep(1.0)
        idle = _cpu_seconds(proc.proc.pid) - before
        rest.close()
        grpc_c.close()
    assert idle < 0.2, f"{idle:.2f} s of CPU in 1 s without requests"


def test_busy_poll_must_not_be_negative():
    with pytest.raises(ValueError, match="busy_poll_us"):
        ModelServer(model_name="m", model_base_path="/nowhere", busy_poll_us=-1)
