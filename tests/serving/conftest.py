"""Fixtures for the serving tests: exported toy models and one in-process server per session."""
from __future__ import annotations

import pytest

import serving  # noqa: F401  (Keras 2 before TensorFlow)


@pytest.fixture(scope="session")
def model_base(tmp_path_factory):
    """BASE with half_plus_two (version 123, TF Serving's fixture number) and keyword_ctr (v1)."""
    import toy_models

    base = tmp_path_factory.mktemp("models")
    toy_models.export_half_plus_two(base, "half_plus_two", version=123)
    path, model, signatures = toy_models.export_keyword_ctr(base, "keyword_ctr", version=1, seed=3,
                                                            work_dir=tmp_path_factory.mktemp("vocab"))
    return {"base": base, "keyword_ctr_path": path, "keyword_ctr_model": model,
            "keyword_ctr_signatures": signatures}


@pytest.fixture(scope="session")
def server(model_base):
    """An in-process ModelServer over both models (loopback, free ports, no polling)."""
    from serving.manager import ModelConfig
    from serving.server import ModelServer

    base = model_base["base"]
    configs = [ModelConfig("half_plus_two", str(base / "half_plus_two"), version_labels={"stable": 123}),
               ModelConfig("keyword_ctr", str(base / "keyword_ctr"))]
    srv = ModelServer(configs, file_system_poll_wait_seconds=0, max_request_bytes=1 << 20).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def rest_url(server) -> str:
    return f"http://127.0.0.1:{server.rest_api_port}"


@pytest.fixture(scope="session")
def grpc_target(server) -> str:
    return f"127.0.0.1:{server.port}"
