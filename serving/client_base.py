"""What ``RestClient`` and ``GrpcClient`` share: retries of UNAVAILABLE / HTTP 503 (and connection
failures) with exponential backoff and jitter, and ``wait_until_ready``."""
from __future__ import annotations

import random
import time
from typing import Any, Callable


class Retry:
    def __init__(self, retries: int, backoff: float, max_backoff: float = 2.0):
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff

    def run(self, call: Callable[[], Any], retryable: Callable[[Exception], bool]):
        attempt = 0
        while True:
            try:
                return call()
            except Exception as err:  # noqa: BLE001 - filtered by ``retryable``
                if attempt >= self.retries or not retryable(err):
                    raise
                delay = min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                time.sleep(delay)
                attempt += 1


class Client:
    """What RestClient and GrpcClient share on top of their ``predict`` and ``status``."""

    model_name: str

    def _where(self) -> str:
        raise NotImplementedError

    def wait_until_ready(self, timeout: float = 60.0, poll: float = 0.2) -> list[dict[str, Any]]:
        """Block until the model has an AVAILABLE version (model status), or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                st = self.status()
                if any(v["state"] == "AVAILABLE" for v in st):
                    return st
            except Exception as err:  # noqa: BLE001 - not up yet, or still loading
                last = err
            time.sleep(poll)
        raise TimeoutError(f"model {self.model_name} not ready at {self._where()} after {timeout}s: {last}")
