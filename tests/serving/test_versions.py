"""Versions: hot swap under load, failed versions in status, half-written dirs, config file, SIGTERM."""
from __future__ import annotations

import threading
import time

import numpy as np

import toy_models
from serving.client import GrpcClient, RestClient
from serving.manager import ModelConfig, parse_model_config_text
from serving.server import ModelServer
from serving.server_process import ServerProcess


def test_hot_swap_under_load_drops_nothing_and_switches(tmp_path):
    toy_models.export_half_plus_two(tmp_path, "m", version=1, b=2.0)
    with ModelServer([ModelConfig("m", str(tmp_path / "m"))], file_system_poll_wait_seconds=0.2) as server:
        rest = RestClient(f"http://127.0.0.1:{server.rest_api_port}", "m", retries=0)
        grpc_c = GrpcClient(f"127.0.0.1:{server.port}", "m", retries=0)
        answers, failures, stop = [], [], threading.Event()

        def loop(c):
            for _ in range(5000):  # bounded
                if stop.is_set():
                    return
                try:
                    answers.append(float(c.predict({"x": np.array([[2.0]], np.float32)})["y"][0, 0]))
                except Exception as err:  # noqa: BLE001
                    failures.append(err)

        threads = [threading.Thread(target=loop, args=(c,)) for c in (rest, grpc_c)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        toy_models.export_half_plus_two(tmp_path, "m", version=2, b=3.0)  # y(2) goes 3.0 → 4.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not answers or answers[-1] != 4.0):
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        rest.close()
        grpc_c.close()
        assert not failures
        assert set(answers) == {3.0, 4.0}
        assert answers[-1] == 4.0 and answers[0] == 3.0
        states = {v["version"]: v["state"] for v in RestClient(
            f"http://127.0.0.1:{server.rest_api_port}", "m").status()}
        assert states == {1: "END", 2: "AVAILABLE"}


def test_failed_and_half_written_versions(tmp_path):
    toy_models.export_half_plus_two(tmp_path, "m", version=1)
    server = ModelServer([ModelConfig("m", str(tmp_path / "m"))], file_system_poll_wait_seconds=0).start()
    try:
        bad = tmp_path / "m" / "3"
        bad.mkdir()
        (bad / "saved_model.pb").write_bytes(b"not a protobuf")
        half = tmp_path / "m" / "4"
        (half / "variables").mkdir(parents=True)  # no saved_model.pb yet: ignored
        (tmp_path / "m" / ".tmp-5-abc").mkdir()     # exporter temp dir: ignored
        server.manager.poll()
        c = RestClient(f"http://127.0.0.1:{server.rest_api_port}", "m")
        st = {v["version"]: v for v in c.status()}
        assert set(st) == {1, 3}
        assert st[3]["state"] == "END" and st[3]["error_code"] != "OK" and st[3]["error_message"]
        assert st[1]["state"] == "AVAILABLE"       # the failed newer version did not unload 1
        assert c.predict({"x": np.array([[2.0]], np.float32)})["y"].tolist() == [[3.0]]
        c.close()
    finally:
        server.stop()


def test_model_config_file_parsing():
    text = """
    model_config_list {
      config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
               model_version_policy { specific { versions: 42 versions: 43 } }
               version_labels { key: "stable" value: 42 } version_labels { key: "canary" value: 43 } }
      config { name: "b" base_path: "/m/b" model_platform: "tensorflow" model_version_policy { all {} } }
    }"""
    a, b = parse_model_config_text(text)
    assert (a.policy, a.versions, a.version_labels) == ("specific", (42, 43), {"stable": 42, "canary": 43})
    assert b.policy == "all"
    import pytest

    with pytest.raises(ValueError, match="Error parsing text-format"):
        parse_model_config_text("model_config_list { config { nme: 1 } }")
    with pytest.raises(ValueError, match="multiple times"):
        parse_model_config_text('model_config_list { config { name: "a" base_path: "/x" model_platform: "tensorflow" }'
                                ' config { name: "a" base_path: "/y" model_platform: "tensorflow" } }')


def test_server_process_config_file_labels_and_clean_sigterm(tmp_path):
    for v, b in ((42, 2.0), (43, 3.0), (44, 4.0)):
        toy_models.export_half_plus_two(tmp_path / "models", "hpt", version=v, b=b, warmup=False)
    toy_models.export_half_plus_two(tmp_path / "models", "other", version=1, b=10.0, warmup=False)
    config = tmp_path / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "hpt" base_path: "{tmp_path / 'models' / 'hpt'}" model_platform: "tensorflow"
               model_version_policy {{ specific {{ versions: 42 versions: 43 }} }}
               version_labels {{ key: "stable" value: 42 }} version_labels {{ key: "canary" value: 43 }} }}
      config {{ name: "other" base_path: "{tmp_path / 'models' / 'other'}" model_platform: "tensorflow" }}
    }}""")
    proc = ServerProcess(model_config_file=str(config), file_system_poll_wait_seconds=0.5).start()
    try:
        x = {"x": np.array([[2.0]], np.float32)}
        hpt = RestClient(proc.rest_url, "hpt")
        assert hpt.predict(x)["y"].tolist() == [[4.0]]                      # latest aspired: 43
        assert hpt.predict(x, label="stable")["y"].tolist() == [[3.0]]
        assert GrpcClient(proc.grpc_target, "hpt").predict(x, label="canary")["y"].tolist() == [[4.0]]
        assert hpt.predict(x, version=42)["y"].tolist() == [[3.0]]
        assert sorted(v["version"] for v in hpt.status()) == [42, 43]       # 44 is not in the policy
        assert RestClient(proc.rest_url, "other").predict(x)["y"].tolist() == [[11.0]]
    finally:
        assert proc.stop() == 0   # SIGTERM → clean exit


def test_failed_warmup_fails_the_load_and_the_old_version_keeps_serving(tmp_path):
    toy_models.export_half_plus_two(tmp_path, "m", version=1)
    with ModelServer([ModelConfig("m", str(tmp_path / "m"))], file_system_poll_wait_seconds=0) as server:
        module, signatures = toy_models.half_plus_two_module(b=5.0)
        toy_models.export_module(module, signatures, tmp_path, "m", version=2,
                                 warmup_requests=[("serving_default", {"z": np.array([[1.0]], np.float32)})])
        server.manager.poll()
        c = GrpcClient(f"127.0.0.1:{server.port}", "m")
        st = {v["version"]: v for v in c.status()}
        assert st[2]["state"] == "END" and st[2]["error_code"] == "INVALID_ARGUMENT"
        assert "Signature input alias: x(feed name: serving_default_x:0) not found" in st[2]["error_message"]
        assert st[1]["state"] == "AVAILABLE"
        assert c.predict({"x": np.array([[2.0]], np.float32)})["y"].tolist() == [[3.0]]
        c.close()


def test_failed_load_is_retried_on_later_polls(tmp_path):
    import shutil

    toy_models.export_half_plus_two(tmp_path, "m", version=1, warmup=False)
    good = toy_models.export_half_plus_two(tmp_path / "other", "m", version=2, b=7.0, warmup=False)
    server = ModelServer([ModelConfig("m", str(tmp_path / "m"))], file_system_poll_wait_seconds=0,
                         max_num_load_retries=1, load_retry_interval_micros=0).start()
    try:
        broken = tmp_path / "m" / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"truncated")
        server.manager.poll()
        assert {s.version: s.state for s in server.manager.status("m")} == {1: "AVAILABLE", 2: "END"}
        shutil.rmtree(broken)
        shutil.copytree(good, broken)          # fixed in place between two polls
        server.manager.poll()                  # retry 1 of 1 succeeds
        assert {s.version: s.state for s in server.manager.status("m")} == {1: "END", 2: "AVAILABLE"}
        assert server.manager.get("m").version == 2
    finally:
        server.stop()
