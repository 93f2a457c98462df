"""The quiet console: TensorFlow's native and Python log noise is dropped, everything else passes,
``--verbose`` brings it all back (adpush/console.py)."""
from __future__ import annotations

import os
import subprocess
import sys

from adpush.cli import _take_verbose

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796159131.626482    6422 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796159131.626814    6422 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
    "E0000 00:00:1796159135.584545    6422 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
    "E0000 00:00:1796159208.236941    7852 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512.\n"
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda\n"
)
KEPT = (
    "E0000 00:00:1796159208.236941    7852 kernel.cc:9] a real error stays\n"
    "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
)
PROGRAM = f"""
import logging, os, sys
from adpush import console
console.quiet()
os.write(2, {NOISE.encode()!r})
logging.getLogger("tensorflow").warning("Skipping full serialization of TF-Keras layer <Ranking>")
sys.stderr.write("\\rexperiments:  50%|#####     | 1/2")
sys.stderr.flush()
sys.stderr.write("\\rexperiments: 100%|##########| 2/2\\n")
os.write(2, {KEPT.encode()!r})
import subprocess
child = {NOISE.encode()!r} + b"child line\\n"
subprocess.run([sys.executable, "-c", "import os, sys; os.write(2, bytes.fromhex(sys.argv[1]))", child.hex()])
print("stdout untouched")
"""


def _run(extra_env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ADPUSH_QUIET", "ADPUSH_VERBOSE")}
    env.update(extra_env)
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, env=env, timeout=60)
    # bytes, decoded by hand: text=True would turn tqdm's \r into \n
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def test_noise_is_dropped_and_the_rest_passes_in_order():
    done = _run({})
    assert done.returncode == 0 and done.stdout == "stdout untouched\n"
    assert done.stderr == ("\rexperiments:  50%|#####     | 1/2\rexperiments: 100%|##########| 2/2\n"
                           + KEPT + "child line\n")  # children inherit the filter


def test_verbose_shows_everything():
    done = _run({"ADPUSH_VERBOSE": "1"})
    assert NOISE in done.stderr and "Skipping full serialization" in done.stderr
    assert done.stderr.count("port.cc:153") == 2


def test_verbose_flag_anywhere_before_a_double_dash():
    assert _take_verbose(["run", "--verbose", "--seed", "1"]) == (["run", "--seed", "1"], True)
    assert _take_verbose(["--verbose", "run"]) == (["run"], True)
    assert _take_verbose(["abtest", "aggregate", "--", "--verbose"]) == (["abtest", "aggregate", "--", "--verbose"],
                                                                       False)
