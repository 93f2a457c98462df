"""A quiet console: TensorFlow's C++ and Python log noise off unless ``--verbose``.

TensorFlow 2.21 writes absl log lines before ``absl::InitializeLog()`` straight to file
descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442): the absl
banner, ``port.cc`` "oneDNN custom operations are on", ``cudart_stub.cc`` "Could not find cuda
drivers", ``cuda_platform.cc`` "failed call to cuInit" on a machine without a GPU. ``quiet()``

* routes fd 2 through a small filter *process* (it outlives a crash of this one, so a segfault's
  last words still come out) that drops native ``I``/``W`` log lines, the absl banner and the
  known GPU-less / CPU-feature ``E`` notices, and passes everything else through unchanged —
  tracebacks, tqdm bars, the real errors;
* sets the ``tensorflow`` Python logger to ERROR (tf-keras' "Skipping full serialization of
  TF-Keras layer" warnings), and ``TF_CPP_MIN_LOG_LEVEL=2`` for TF's own post-init logging.

Child processes inherit the filtered fd 2 and the settings (``ADPUSH_QUIET=1``), so the stage
subprocesses of ``adpush run`` are quiet too. ``--verbose`` (or ``ADPUSH_VERBOSE=1``) leaves
everything as TensorFlow prints it.
"""
from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys

VERBOSE_ENV = "ADPUSH_VERBOSE"
QUIET_ENV = "ADPUSH_QUIET"

#: A native (absl / TF C++) log line, its level in group "level":
#: ``I0000 00:00:1796159131.626482    6422 port.cc:153] …`` or TF's older
#: ``2025-09-17 14:44:05.157831: I external/…/cudart_stub.cc:32] …``.
NATIVE_LINE = (rb"^(?:(?P<level>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\]|"
               rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<level2>[IWEF]) [^\]]+\])")
ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: ``E`` lines that only say "no GPU here" or "this CPU lacks AVX-512": noise on a CPU machine.
BENIGN_ERRORS = (rb"failed call to cuInit|Unable to register cu(?:FFT|DNN|BLAS) factory|"
                 rb"oneDNN supports DT_[A-Z0-9]+ only on platforms with AVX-512")

# Runs as ``python -S -c PROGRAM NATIVE BENIGN BANNER``: stdin = the pipe, stdout = the real fd 2.
_FILTER_PROGRAM = r"""
import os, re, sys
native, benign, banner = (re.compile(os.fsencode(sys.argv[1])), re.compile(os.fsencode(sys.argv[2])),
                          os.fsencode(sys.argv[3]))
out = sys.stdout.buffer
def keep(line):
    body = line.rstrip(b"\r\n")
    if body == banner:
        return False
    m = native.match(body)
    if m is None:
        return True
    level = m.group("level") or m.group("level2")
    return level not in (b"I", b"W") and not benign.search(body)
pending = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    pending += chunk
    *lines, pending = pending.split(b"\n")
    for line in lines:
        if keep(line):
            out.write(line + b"\n")
    # A partial line that cannot start a log line (a tqdm bar redrawn with \r) goes out now.
    if pending and not (pending[:1].isdigit() or pending[:1] in (b"I", b"W", b"E", b"F")
                        or banner.startswith(pending[:len(banner)])):
        out.write(pending)
        pending = b""
    out.flush()
if pending and keep(pending):
    out.write(pending)
out.flush()
"""


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose() -> None:
    """``--verbose``: TensorFlow's logs as it prints them, here and in child processes."""
    os.environ[VERBOSE_ENV] = "1"


def _quiet_python_loggers() -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging  # noqa: PLC0415 - optional, light

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def quiet() -> None:
    """Silence TensorFlow's noise for this process and its children (no-op with --verbose)."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _quiet_python_loggers()
    if os.environ.get(QUIET_ENV) == "1":
        return  # fd 2 already goes through a parent's filter
    try:
        sys.stderr.flush()
        original = os.dup(2)
        args = [os.fsdecode(x) for x in (NATIVE_LINE, BENIGN_ERRORS, ABSL_BANNER)]
        filt = subprocess.Popen([sys.executable, "-S", "-c", _FILTER_PROGRAM, *args], stdin=subprocess.PIPE,
                                stdout=original, stderr=original, close_fds=True)
    except OSError:
        return  # no filter (e.g. no fd 2): stay as we are
    os.dup2(filt.stdin.fileno(), 2)
    os.environ[QUIET_ENV] = "1"

    def restore() -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # our copy of the pipe closes; the filter drains and exits
        filt.stdin.close()
        try:
            filt.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child still holds the pipe; it will finish alone
            pass

    atexit.register(restore)
