"""``ServerProcess``: ``python -m serving.server`` in a child process, for tests, the demo and
``adpush run`` — the child binds free ports and reports them through a file, so there are no port
races::

    with ServerProcess(model_name="m", model_base_path="/models/m") as proc:
        proc.rest_url, proc.grpc_target
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class ServerProcess:
    """``python -m serving.server`` in a child process: starts, waits until ready, stops cleanly.

    Keyword arguments are server flags (``model_name=``, ``model_base_path=``,
    ``model_config_file=``, ``file_system_poll_wait_seconds=``...). Ports default to 0: the child
    binds free ports and reports them.
    """

    def __init__(self, startup_timeout: float = 180.0, log_path: str | None = None, **flags):
        flags.setdefault("port", 0)
        flags.setdefault("rest_api_port", 0)
        self.flags = flags
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.rest_api_port: int | None = None
        self._tmp = None
        self._log = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_api_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        self._tmp = tempfile.TemporaryDirectory(prefix="adpush-serve-")
        port_file = os.path.join(self._tmp.name, "ports.json")
        cmd = [sys.executable, "-m", "serving.server", f"--port_file={port_file}"]
        for key, value in self.flags.items():
            if key == "rest_api_port" and value == 0:
                value = -1  # child: ephemeral REST port (0 would disable REST, as in TF Serving)
            cmd.append(f"--{key}={value}")
        log_path = self.log_path or os.path.join(self._tmp.name, "server.log")
        self._log = open(log_path, "wb")
        self.log_file = log_path
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                info = json.loads(Path(port_file).read_text())
                self.port, self.rest_api_port = info["port"], info["rest_api_port"]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self._log.flush()
        tail = Path(log_path).read_text(errors="replace")[-4000:]
        self.stop()
        raise RuntimeError(f"model server did not start; log:\n{tail}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for a clean exit (kill after ``timeout``); returns the exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            code = self.proc.returncode
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
