"""Headless Chromium (Debian's ``chromium``) for checking that HTML reports render."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    """The browser binary; CI must have it (.ci/run installs it), elsewhere the test skips."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, timeout=120)


def screenshot(html: Path, png: Path, size: str = "1400,1800") -> Path:
    result = _run([f"--window-size={size}", f"--screenshot={png}", html.resolve().as_uri()])
    assert png.is_file(), result.stderr.decode(errors="replace")[-2000:]
    return png


def dump_dom(html: Path) -> str:
    result = _run(["--dump-dom", html.resolve().as_uri()])
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode()
