"""A large REST request beside small ones: does the server stall, and what does it cost in memory?

Starts the local server (``python -m serving.server``, a separate process) on TF Serving's
``half_plus_two`` (tests/serving/toy_models.py) and measures:

1. **latency of 1-instance requests while a large request is in flight**: sequential
   ``{"instances": [[x]]}`` predicts on one keep-alive connection, first alone (baseline), then
   while one ``--big_mb`` request (``{"instances": [[x], [x], ...]}``, row format) runs on a second
   connection; p50 / p99 / max and how many small requests completed during it;
2. **peak RSS of the server for one ``--rss_mb`` request** (``VmHWM`` of the server process
   before and after it, and ``VmRSS`` once it has answered), on a freshly started server.

``--tree DIR`` runs the server (and the client's imports) from another checkout, so the same
script measures main's code: ``git worktree add /tmp/before main`` then
``PYTHONPATH=/tmp/before python bench/serving_load_bench.py --tree /tmp/before``.

    python bench/serving_load_bench.py --seed 0
    python bench/serving_load_bench.py --seed 0 --big_mb 20 --rss_mb 60 --tree /tmp/before
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def big_body(megabytes: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(megabytes * 1e6 / 12)  # "[0.123456], " is 12 bytes
    values = rng.random(n)
    return ('{"instances": [' + ", ".join(f"[{v:.6f}]" for v in values) + "]}").encode()


def post(conn, body: bytes, timeout: float):
    conn.timeout = timeout
    if conn.sock is not None:  # a kept-alive socket keeps the timeout it was opened with
        conn.sock.settimeout(timeout)
    t = time.perf_counter()
    conn.request("POST", "/v1/models/m:predict", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    return resp.status, (time.perf_counter() - t) * 1e3, payload


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def latency_during_big(server, big: bytes, baseline_n: int, max_seconds: float) -> dict:
    small = b'{"instances": [[1.5]]}'
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=60)
    for _ in range(20):
        post(conn, small, 60)
    alone = [post(conn, small, 60)[1] for _ in range(baseline_n)]
    result = {}

    def run_big():
        big_conn = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=max_seconds + 60)
        try:
            status, ms, payload = post(big_conn, big, max_seconds + 60)
            result.update(status=status, ms=ms, response_bytes=len(payload),
                          error=payload[:200].decode(errors="replace") if status != 200 else None)
        except Exception as err:  # noqa: BLE001 - a bench reports, it does not crash
            result.update(status=None, ms=None, error=repr(err))

    thread = threading.Thread(target=run_big)
    start = time.perf_counter()
    thread.start()
    time.sleep(0.05)
    during, statuses = [], set()
    while thread.is_alive() and time.perf_counter() - start < max_seconds:
        try:
            status, ms, _ = post(conn, small, max_seconds)
        except Exception as err:  # noqa: BLE001
            statuses.add(repr(err))
            break
        statuses.add(status)
        during.append(ms)
    thread.join(max_seconds + 60)
    return {"alone_p50_ms": _pct(alone, 50), "alone_p99_ms": _pct(alone, 99),
            "during_n": len(during), "during_p50_ms": _pct(during, 50), "during_p99_ms": _pct(during, 99),
            "during_max_ms": max(during) if during else float("nan"), "during_statuses": sorted(map(str, statuses)),
            "big_status": result.get("status"), "big_ms": result.get("ms"), "big_error": result.get("error"),
            "big_bytes": len(big)}


def rss_for_request(server, body: bytes, timeout: float) -> dict:
    pid = server.proc.pid
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=timeout)
    post(conn, b'{"instances": [[1.5]]}', 60)
    before_hwm, before_rss = _status_kb(pid, "VmHWM"), _status_kb(pid, "VmRSS")
    try:
        status, ms, payload = post(conn, body, timeout)
        error = payload[:200].decode(errors="replace") if status != 200 else None
    except Exception as err:  # noqa: BLE001
        status, ms, error = None, None, repr(err)
    time.sleep(1.0)
    return {"request_bytes": len(body), "status": status, "ms": ms, "error": error,
            "rss_before_mb": before_rss / 1024, "peak_before_mb": before_hwm / 1024,
            "peak_mb": _status_kb(pid, "VmHWM") / 1024, "rss_after_mb": _status_kb(pid, "VmRSS") / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big_mb", type=float, default=20.0)
    parser.add_argument("--rss_mb", type=float, default=60.0)
    parser.add_argument("--baseline_requests", type=int, default=200)
    parser.add_argument("--max_seconds", type=float, default=300.0, help="give up on the big request after this")
    parser.add_argument("--only", choices=("latency", "rss"), default=None, help="run one of the two parts")
    parser.add_argument("--tree", default=None, help="checkout whose serving/ runs (default: this one)")
    parser.add_argument("--server_flag", action="append", default=[],
                        help="extra server flag, e.g. --server_flag rest_inference_threads=2")
    args = parser.parse_args(argv)
    root = Path(args.tree).resolve() if args.tree else Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    # The toy models are test helpers of this checkout (tests/serving/toy_models.py).
    sys.path.append(str(Path(__file__).resolve().parents[1] / "tests" / "serving"))
    os.chdir(root)  # the server child runs `python -m serving.server`: its cwd comes first on sys.path
    from adpush_core import tfenv  # noqa: F401  (Keras 2 before TensorFlow)
    import toy_models
    from serving.server_process import ServerProcess

    flags = dict(f.split("=", 1) for f in args.server_flag)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="serving-load-") as base:
        toy_models.export_half_plus_two(base, "m", version=1)
        lat = rss = None
        if args.only != "rss":
            big = big_body(args.big_mb, args.seed)
            with ServerProcess(model_name="m", model_base_path=str(Path(base) / "m"),
                               file_system_poll_wait_seconds=0, **flags) as server:
                lat = latency_during_big(server, big, args.baseline_requests, args.max_seconds)
            del big
        if args.only != "latency":
            body = big_body(args.rss_mb, args.seed + 1)
            with ServerProcess(model_name="m", model_base_path=str(Path(base) / "m"),
                               file_system_poll_wait_seconds=0, **flags) as server:
                rss = rss_for_request(server, body, args.max_seconds)
    print(f"tree {root}; load average {load[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    if lat is not None:
        _print_latency(lat)
    if rss is not None:
        print(f"\n{rss['request_bytes'] / 1e6:.1f} MB request: status {rss['status']} {rss['error'] or ''} in "
              f"{(rss['ms'] or 0) / 1e3:.1f} s; server RSS before {rss['rss_before_mb']:.0f} MB, "
              f"peak {rss['peak_mb']:.0f} MB (peak before {rss['peak_before_mb']:.0f} MB), after "
              f"{rss['rss_after_mb']:.0f} MB")
    print(json.dumps({"latency": lat, "rss": rss, "load": load}))
    return 0


def _print_latency(lat: dict) -> None:
    print(f"| 1-instance p50 / p99 alone (ms) | while a {lat['big_bytes'] / 1e6:.1f} MB request runs: n, p50 / p99 / max (ms) "
          f"| big request: status, s |")
    print("|---|---|---|")
    big_s = f"{lat['big_ms'] / 1e3:.1f}" if lat["big_ms"] else "-"
    print(f"| {lat['alone_p50_ms']:.2f} / {lat['alone_p99_ms']:.2f} | {lat['during_n']}, {lat['during_p50_ms']:.2f} / "
          f"{lat['during_p99_ms']:.2f} / {lat['during_max_ms']:.0f} | {lat['big_status']} {lat['big_error'] or ''}, {big_s} |")


if __name__ == "__main__":
    sys.exit(main())
