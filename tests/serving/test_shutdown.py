"""Clean shutdown (requests in flight finish) and the REST deadline, on a deliberately slow model."""
from __future__ import annotations

import threading
import time

import numpy as np
import toy_models

from serving.client import GrpcClient, RestClient
from serving.manager import ModelConfig
from serving.server import ModelServer


def _slow_model(tmp_path):
    """A model that takes `n` milliseconds of wall time, on any machine.

    A fixed amount of arithmetic is not slow everywhere: 5000 128×128 matmuls took 1 s here and
    under 0.2 s on a CI machine, which made the in-flight check below race. The loop spins on
    `tf.timestamp()` (a stateful op, re-read every iteration, kept in the SavedModel) instead.
    """
    import tensorflow as tf

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
        def run(self, n):
            start = tf.timestamp()
            seconds = tf.cast(n[0], tf.float64) / 1000.0

            def body(i):
                return [i + 1]

            (spins,) = tf.while_loop(lambda i: tf.timestamp() - start < seconds, body, [tf.constant(0)])
            elapsed = tf.timestamp() - start
            return {"y": tf.fill(tf.shape(n), tf.cast(elapsed, tf.float32) + tf.cast(spins > -1, tf.float32))}

    module = Slow()
    return toy_models.export_module(module, {"serving_default": module.run}, tmp_path, "slow", version=1)


import pytest


@pytest.fixture(scope="module")
def slow_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("slow")
    _slow_model(base)
    return base


def test_stop_lets_in_flight_requests_finish(slow_base):
    server = ModelServer([ModelConfig("slow", str(slow_base / "slow"))], file_system_poll_wait_seconds=0,
                         enable_model_warmup=False, rest_inference_threads=2).start()
    rest = RestClient(f"http://127.0.0.1:{server.rest_api_port}", "slow", retries=0, timeout=60)
    grpc_c = GrpcClient(f"127.0.0.1:{server.port}", "slow", retries=0, timeout=60)
    rest.predict({"n": np.array([1], np.int32)})  # connections are up before the clock starts
    grpc_c.predict({"n": np.array([1], np.int32)})
    results, finished, started = {}, {}, threading.Event()
    n = np.array([2000], np.int32)  # 2 s of wall time on any machine

    def call(name, client):
        started.set()
        try:
            results[name] = float(client.predict({"n": n})["y"][0])
        except Exception as err:  # noqa: BLE001
            results[name] = err
        finished[name] = time.perf_counter()

    threads = [threading.Thread(target=call, args=(k, c)) for k, c in (("rest", rest), ("grpc", grpc_c))]
    for th in threads:
        th.start()
    started.wait(10)
    time.sleep(0.2)
    t = time.perf_counter()
    server.stop()
    stop_seconds = time.perf_counter() - t
    for th in threads:
        th.join(60)
    rest.close()
    grpc_c.close()
    assert set(results) == {"rest", "grpc"}
    assert all(isinstance(v, float) and v > 0 for v in results.values()), results
    assert stop_seconds < 30
    assert max(finished.values()) > t, "the requests were not in flight when stop() began"



def test_rest_deadline_gives_504_and_the_server_keeps_serving(slow_base):
    with ModelServer([ModelConfig("slow", str(slow_base / "slow"))], file_system_poll_wait_seconds=0,
                     enable_model_warmup=False, rest_inference_threads=2, rest_api_timeout_in_ms=1000) as server:
        import requests

        url = f"http://127.0.0.1:{server.rest_api_port}/v1/models/slow:predict"
        r = requests.post(url, data='{"instances": [5000]}', timeout=60)
        assert r.status_code == 504 and r.json() == {"error": "Deadline Exceeded"}
        r = requests.post(url, data='{"instances": [1]}', timeout=60)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1
