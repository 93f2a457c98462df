"""Serving benchmark: one-instance predict over REST and gRPC vs the in-process signature call.

Exports a toy model (``tests/serving/toy_models.py``), starts the local server as a separate process
(so the load generator does not share its GIL), then measures:

* p50 / p99 latency of sequential one-instance predicts: REST (keep-alive ``http.client``) and
  gRPC (a reused channel), next to the in-process signature call;
* the server's CPU time and thread wake-ups per sequential request (``/proc``), which other jobs
  on a shared machine move far less than latency;
* requests/s at several concurrency levels (asyncio: aiohttp client for REST, grpc.aio for gRPC).

The load generator runs on the same machine. By default (``--server_cpus 0`` on a machine with
2 or more cores) every server's threads are pinned to core 0 and the bench's own (the load
generator, the in-process call) to the other cores, as a load test keeps its generator off the
system under test; unpinned, the generator's and the server's threads (grpcio's pollers and
executors among them) migrate between the two cores and each gRPC call costs ~30% more CPU
(0.69-0.75 vs 0.53-0.58 ms per call measured on ``keyword_ctr``). ``--server_cpus none`` runs
unpinned. Prints a Markdown table.

Each server variant runs with ``--busy_poll_us`` (default: the server's own, adaptive idle
polling on; ``--busy_poll_us 0 1000`` compares it with sleeping loops). The load generator's
core still halts while it waits for an answer, and the grpcio client wakes four threads a call
against ``http.client``'s one, so on a VM that halts idle cores the generator's own wake-ups
weigh on gRPC more than on REST; ``--generator_cores_awake`` keeps the generator's cores out of
their halt state (root) to measure the servers without that.

    python bench/serving_bench.py --seed 0
    python bench/serving_bench.py --model half_plus_two --rest_inference_threads 0 4 --concurrency 1 8 16 32
    python bench/serving_bench.py --seed 0 --enable_batching false true     # TF Serving's --enable_batching
    python bench/serving_bench.py --busy_poll_us 0 1000 --generator_cores_awake
    git archive 3b18537 serving adpush | tar -x -C /tmp/before                # before/after in one run:
    python bench/serving_bench.py --seed 0 --rounds 3 --concurrency 1 16 --enable_batching false true \
        --baseline_tree /tmp/before

Every variant runs in the same invocation, so compare ratios within one run: the machine is shared.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The toy models are test helpers (tests/serving/toy_models.py).
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests" / "serving"))

from adpush_core import tfenv  # noqa: E402,F401  (Keras 2 before TensorFlow)
from serving.idle_poll import DEFAULT_MAX_US  # noqa: E402


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process ``pid`` to ``cpus`` (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:   # a thread that has just exited
            pass


@contextlib.contextmanager
def cores_awake(cpus: set[int]):
    """Per-core PM QoS: the cores in ``cpus`` poll in their idle loop instead of halting, until
    the block ends (the old settings are written back)."""
    paths = [Path(f"/sys/devices/system/cpu/cpu{c}/power/pm_qos_resume_latency_us") for c in sorted(cpus)]
    old = {}
    try:
        for path in paths:
            old[path] = path.read_text().strip()
            path.write_text("n/a")
    except OSError as err:
        for path, value in old.items():
            path.write_text(value)
        raise SystemExit(f"--generator_cores_awake: cannot write {path}: {err}") from None
    try:
        yield
    finally:
        for path, value in old.items():
            path.write_text(value)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


_KEEP_ALIVE: list = []  # tf.function methods hold their module weakly


def build_model(kind: str, base: Path, seed: int):
    import tensorflow as tf

    import toy_models

    if kind == "half_plus_two":
        toy_models.export_half_plus_two(base, "m", version=1)
        module, sigs = toy_models.half_plus_two_module()
        _KEEP_ALIVE.append(module)
        inputs = {"x": np.array([[1.5]], np.float32)}
        body = json.dumps({"instances": [[1.5]]}).encode()
        call = sigs["serving_default"]
    else:
        _, _, sigs = toy_models.export_keyword_ctr(base, "m", version=1, seed=seed)
        raw = toy_models.keyword_ctr_requests(1, seed=seed)
        inputs = raw
        body = json.dumps({"instances": [{k: (int(v[0]) if k == "hour" else v[0]) for k, v in raw.items()}]}).encode()
        call = sigs["serving_default"]
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    return call, tensors, inputs, body


def bench_in_process(call, tensors, n: int) -> list[float]:
    for _ in range(20):
        call(**tensors)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call(**tensors)
        out.append((time.perf_counter() - t) * 1e3)
    return out


class ServerCpu:
    """CPU time and voluntary context switches of a server process over the timed requests,
    summed over its threads (``/proc/PID/task/*/schedstat``, ``status``): less sensitive to the
    other jobs on a shared machine than latency is, and it shows the thread hand-offs a request
    costs (REST's event loop: one wake-up per request)."""

    def __init__(self, pid: int | None):
        self.pid, self.start, self.n = pid, None, 0

    def _read(self) -> tuple[int, int]:
        cpu_ns = switches = 0
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                cpu_ns += int(Path(f"/proc/{self.pid}/task/{task}/schedstat").read_text().split()[0])
                status = Path(f"/proc/{self.pid}/task/{task}/status").read_text()
            except (FileNotFoundError, ProcessLookupError):   # a thread that has just exited
                continue
            switches += int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
        return cpu_ns, switches

    def begin(self) -> None:
        if self.pid is not None:
            self.start = self._read()

    def count(self) -> None:
        self.n += 1

    def per_request(self) -> dict:
        """{"cpu_ms": server CPU per request, "wakeups": voluntary switches per request} (NaN without a pid)."""
        if self.start is None or not self.n:
            return {"cpu_ms": float("nan"), "wakeups": float("nan")}
        cpu_ns, switches = self._read()
        return {"cpu_ms": (cpu_ns - self.start[0]) / self.n / 1e6, "wakeups": (switches - self.start[1]) / self.n}


def bench_rest_sequential(port: int, body: bytes, n: int, server: ServerCpu | None = None) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    path = "/v1/models/m:predict"
    server = server or ServerCpu(None)
    out = []
    for i in range(n + 20):
        if i == 20:
            server.begin()
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(data)
        if i >= 20:
            out.append((time.perf_counter() - t) * 1e3)
            server.count()
    conn.close()
    return out


def _grpc_request(inputs):
    from tensorflow_serving.apis import predict_pb2

    from serving.tensor_proto import ndarray_to_tensor_proto

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "m"
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(ndarray_to_tensor_proto(np.asarray(v)))
    return req


def bench_grpc_sequential(port: int, inputs, n: int, server: ServerCpu | None = None) -> list[float]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    req = _grpc_request(inputs)
    server = server or ServerCpu(None)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
        out = []
        for i in range(n + 20):
            if i == 20:
                server.begin()
            t = time.perf_counter()
            stub.Predict(req, timeout=10)
            if i >= 20:
                out.append((time.perf_counter() - t) * 1e3)
                server.count()
    return out


async def _rest_load(port: int, body: bytes, concurrency: int, seconds: float) -> tuple[float, int]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    done, errors = 0, 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            nonlocal done, errors
            while time.perf_counter() < stop:
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1
                    else:
                        errors += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    return done / elapsed, errors


async def _grpc_load(port: int, inputs, concurrency: int, seconds: float) -> tuple[float, int]:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    req = _grpc_request(inputs)
    done, errors = 0, 0
    stop = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)

        async def worker():
            nonlocal done, errors
            while time.perf_counter() < stop:
                try:
                    await stub.Predict(req, timeout=10)
                    done += 1
                except grpc.RpcError:
                    errors += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    return done / elapsed, errors


def _med(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _measure(proc, body: bytes, inputs, args) -> dict:
    """One round on one server: sequential REST and gRPC latency, then requests/s per concurrency."""
    load = os.getloadavg()[0]
    rest_cpu, grpc_cpu = ServerCpu(proc.proc.pid), ServerCpu(proc.proc.pid)
    c0 = time.process_time()
    rest = bench_rest_sequential(proc.rest_api_port, body, args.requests, rest_cpu)
    c1 = time.process_time()
    rest_server = rest_cpu.per_request()
    grpc_lat = bench_grpc_sequential(proc.port, inputs, args.requests, grpc_cpu)
    c2 = time.process_time()
    n = args.requests + 20
    out = {"loadavg": load, "rest_p50": _pct(rest, 50), "rest_p99": _pct(rest, 99),
           "grpc_p50": _pct(grpc_lat, 50), "grpc_p99": _pct(grpc_lat, 99),
           "rest_server": rest_server, "grpc_server": grpc_cpu.per_request(),
           "rest_client_ms": (c1 - c0) / n * 1e3, "grpc_client_ms": (c2 - c1) / n * 1e3, "throughput": []}
    for c in args.concurrency:
        rest_rps, rest_err = asyncio.run(_rest_load(proc.rest_api_port, body, c, args.seconds))
        grpc_rps, grpc_err = asyncio.run(_grpc_load(proc.port, inputs, c, args.seconds))
        out["throughput"].append({"rest_rps": rest_rps, "grpc_rps": grpc_rps, "errors": rest_err + grpc_err})
    return out


class _TreeServer:
    """``python -m serving.server`` from another source tree (the baseline of a before/after)."""

    def __init__(self, tree: str, model_base_path: str):
        self.tree, self.model_base_path = str(Path(tree).resolve()), model_base_path

    def __enter__(self):
        import subprocess

        self._tmp = tempfile.TemporaryDirectory(prefix="serving-bench-baseline-")
        port_file = Path(self._tmp.name) / "ports.json"
        env = dict(os.environ, PYTHONPATH=self.tree)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving.server", f"--port_file={port_file}", "--port=0", "--rest_api_port=-1",
             "--model_name=m", f"--model_base_path={self.model_base_path}", "--file_system_poll_wait_seconds=0"],
            cwd=self.tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"baseline server from {self.tree} did not start")
            time.sleep(0.2)
        info = json.loads(port_file.read_text())
        self.port, self.rest_api_port = info["port"], info["rest_api_port"]
        return self

    def __exit__(self, *exc):
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:  # noqa: BLE001
                self.proc.kill()
        self._tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=["keyword_ctr", "half_plus_two"], default="keyword_ctr")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per latency figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--rest_inference_threads", type=int, nargs="+", default=[0],
                        help="server variants to compare (0: inference on the event loop)")
    parser.add_argument("--enable_batching", choices=["false", "true"], nargs="+", default=["false"],
                        help="server variants: without / with server-side batching")
    parser.add_argument("--busy_poll_us", type=int, nargs="+", default=[DEFAULT_MAX_US],
                        help="server variants: --busy_poll_us, the loops' adaptive polling window's "
                             f"maximum (0: they sleep when idle; the server's default: {DEFAULT_MAX_US})")
    parser.add_argument("--batching_parameters", default="max_batch_size { value: 64 }\n"
                        "batch_timeout_micros { value: 0 }\nnum_batch_threads { value: 2 }\n",
                        help="text-proto BatchingParameters for the batching variant")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate this many rounds over the variants (all servers stay up)")
    parser.add_argument("--baseline_tree", default=None,
                        help="also serve from another source tree (e.g. `git archive REV serving adpush | "
                             "tar -x -C DIR`) as the first variant, for before/after in one run")
    parser.add_argument("--server_cpus", default="0" if (os.cpu_count() or 1) >= 2 else "none",
                        help="comma-separated cores for the servers' threads, the bench's own on the others "
                             "('none': no pinning)")
    parser.add_argument("--generator_cores_awake", action="store_true",
                        help="keep the load generator's cores out of their halt state for the run "
                             "(per-core PM QoS: pm_qos_resume_latency_us = n/a, restored after; needs "
                             "root), as on a VM whose kernel polls before halting: isolates the server "
                             "from the generator's own wake-ups")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    from serving.server_process import ServerProcess

    server_cpus = None if args.server_cpus == "none" else {int(c) for c in args.server_cpus.split(",")}
    bench_cpus = (set(os.sched_getaffinity(0)) - server_cpus) if server_cpus else None
    if server_cpus is not None and not bench_cpus:
        parser.error(f"--server_cpus {args.server_cpus} leaves no core for the load generator")
    results = {"model": args.model, "seed": args.seed, "cpus": os.cpu_count(), "rounds": args.rounds,
               "server_cpus": sorted(server_cpus) if server_cpus else None,
               "bench_cpus": sorted(bench_cpus) if bench_cpus else None,
               "loadavg_start": os.getloadavg(), "variants": []}
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        if bench_cpus:
            pin(os.getpid(), bench_cpus)
        if args.generator_cores_awake:
            if not bench_cpus:
                parser.error("--generator_cores_awake needs the load generator pinned (--server_cpus)")
            stack.enter_context(cores_awake(bench_cpus))
        results["generator_cores_awake"] = bool(args.generator_cores_awake)
        call, tensors, inputs, body = build_model(args.model, base, args.seed)
        in_proc = bench_in_process(call, tensors, args.requests)
        results["in_process_ms"] = {"p50": _pct(in_proc, 50), "p99": _pct(in_proc, 99)}
        params_file = base / "batching.config"
        params_file.write_text(args.batching_parameters)
        # Every variant's server is up for the whole run and the rounds alternate between them,
        # so a burst from other jobs on the machine hits all of them alike.
        servers = []
        if args.baseline_tree:
            servers.append(({"server": f"baseline {args.baseline_tree}", "rest_inference_threads": 0,
                             "enable_batching": "false"},
                            stack.enter_context(_TreeServer(args.baseline_tree, str(base / "m")))))
        for spin in args.busy_poll_us:
            for batching in args.enable_batching:
                for threads in args.rest_inference_threads:
                    flags = {"enable_batching": batching}
                    if batching == "true":
                        flags["batching_parameters_file"] = str(params_file)
                    flags["busy_poll_us"] = spin
                    proc = stack.enter_context(ServerProcess(model_name="m", model_base_path=str(base / "m"),
                                                             file_system_poll_wait_seconds=0,
                                                             rest_inference_threads=threads, **flags))
                    servers.append(({"server": "this tree", "rest_inference_threads": threads,
                                     "enable_batching": batching, "busy_poll_us": spin}, proc))
        if server_cpus:
            for _, proc in servers:
                pin(proc.proc.pid, server_cpus)
        rounds = {id(proc): [] for _, proc in servers}
        for _ in range(args.rounds):
            for _, proc in servers:
                rounds[id(proc)].append(_measure(proc, body, inputs, args))
        for info, proc in servers:
            rs = rounds[id(proc)]
            variant = dict(info, loadavg=[r["loadavg"] for r in rs],
                           client_cpu_ms={api: _med([r[f"{api}_client_ms"] for r in rs]) for api in ("rest", "grpc")},
                           rest_ms={"p50": _med([r["rest_p50"] for r in rs]), "p99": _med([r["rest_p99"] for r in rs]),
                                    "p50_rounds": [r["rest_p50"] for r in rs]},
                           grpc_ms={"p50": _med([r["grpc_p50"] for r in rs]), "p99": _med([r["grpc_p99"] for r in rs]),
                                    "p50_rounds": [r["grpc_p50"] for r in rs]},
                           server_cpu={api: {k: _med([r[f"{api}_server"][k] for r in rs]) for k in ("cpu_ms", "wakeups")}
                                   for api in ("rest", "grpc")},
                           throughput=[])
            for i, c in enumerate(args.concurrency):
                rows = [r["throughput"][i] for r in rs]
                variant["throughput"].append({
                    "concurrency": c, "rest_rps": _med([x["rest_rps"] for x in rows]),
                    "grpc_rps": _med([x["grpc_rps"] for x in rows]),
                    "rest_rps_rounds": [x["rest_rps"] for x in rows], "errors": sum(x["errors"] for x in rows)})
            results["variants"].append(variant)
    results["loadavg_end"] = os.getloadavg()

    pinning = (f"servers on cores {results['server_cpus']}, load generator on {results['bench_cpus']}"
               + (" kept awake" if args.generator_cores_awake else "") if server_cpus else "unpinned")
    print(f"# serving bench: model={args.model} seed={args.seed} cpus={results['cpus']} ({pinning}) rounds={args.rounds} "
          f"loadavg start={results['loadavg_start'][0]:.2f} end={results['loadavg_end'][0]:.2f}")
    in_p50 = results["in_process_ms"]["p50"]
    print(f"in-process signature call: p50 {in_p50:.3f} ms, p99 {results['in_process_ms']['p99']:.3f} ms")
    print("(medians over the rounds; REST p50 and REST req/s also per round)")
    first = results["variants"][0]
    for v in results["variants"]:
        print(f"\n## {v['server']}: --rest_inference_threads={v['rest_inference_threads']} "
              f"--enable_batching={v['enable_batching']} --busy_poll_us={v.get('busy_poll_us', 0)} (loadavg per round "
              f"{' / '.join(f'{x:.2f}' for x in v['loadavg'])})")
        print(f"one-instance predict latency: REST p50 {v['rest_ms']['p50']:.3f} ms "
              f"({' / '.join(f'{x:.3f}' for x in v['rest_ms']['p50_rounds'])}) / p99 {v['rest_ms']['p99']:.3f} ms;"
              f" gRPC p50 {v['grpc_ms']['p50']:.3f} ms ({' / '.join(f'{x:.3f}' for x in v['grpc_ms']['p50_rounds'])})"
              f" / p99 {v['grpc_ms']['p99']:.3f} ms;"
              f" REST p50 / in-process p50 = {v['rest_ms']['p50'] / in_p50:.1f}"
              + (f"; REST p50 / first variant's = {v['rest_ms']['p50'] / first['rest_ms']['p50']:.2f}"
                 if v is not first else ""))
        rest_srv, grpc_srv = v["server_cpu"]["rest"], v["server_cpu"]["grpc"]
        print(f"server CPU per sequential request: REST {rest_srv['cpu_ms']:.3f} ms ({rest_srv['wakeups']:.1f} thread "
              f"wake-ups), gRPC {grpc_srv['cpu_ms']:.3f} ms ({grpc_srv['wakeups']:.1f} wake-ups)"
              + ("; includes the idle polling" if v.get("busy_poll_us") else ""))
        print(f"load generator CPU per sequential request: REST (http.client) {v['client_cpu_ms']['rest']:.3f} ms, "
              f"gRPC (grpcio stub) {v['client_cpu_ms']['grpc']:.3f} ms")
        print("\n| concurrency | REST req/s | REST req/s per round | gRPC req/s | errors |\n|---:|---:|---|---:|---:|")
        for row in v["throughput"]:
            print(f"| {row['concurrency']} | {row['rest_rps']:.0f} | "
                  f"{' / '.join(f'{x:.0f}' for x in row['rest_rps_rounds'])} | {row['grpc_rps']:.0f} | {row['errors']} |")
    print_targets(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


LATENCY_SLACK_MS = 0.5      # issue 18: REST and gRPC p50 <= in-process p50 + 0.5 ms at concurrency 1
BATCHED_RPS = 3000.0        # issue 18: REST and gRPC >= 3,000 req/s at concurrency 16 with batching
BATCHED_CONCURRENCY = 16


def targets(results: dict) -> list[tuple[str, float, float, str]]:
    """(figure, value, limit, relation) of issue 18's targets, per variant of this tree; the
    latency limit is the in-process p50 measured in the same run plus LATENCY_SLACK_MS."""
    limit = results["in_process_ms"]["p50"] + LATENCY_SLACK_MS
    rows = []
    for v in results["variants"]:
        if v["server"] != "this tree":
            continue
        spin = v.get("busy_poll_us", 0)
        tag = (f"batching={v['enable_batching']} busy_poll_us={spin}"
               + (" (default)" if spin == DEFAULT_MAX_US else ""))
        rows.append((f"{tag} REST p50 ms", v["rest_ms"]["p50"], limit, "<="))
        rows.append((f"{tag} gRPC p50 ms", v["grpc_ms"]["p50"], limit, "<="))
        rows.append((f"{tag} gRPC p50 / REST p50", v["grpc_ms"]["p50"] / v["rest_ms"]["p50"], 1.0, "<="))
        if v["enable_batching"] == "true":
            for row in v["throughput"]:
                if row["concurrency"] == BATCHED_CONCURRENCY:
                    rows.append((f"{tag} c={BATCHED_CONCURRENCY} REST req/s", row["rest_rps"], BATCHED_RPS, ">="))
                    rows.append((f"{tag} c={BATCHED_CONCURRENCY} gRPC req/s", row["grpc_rps"], BATCHED_RPS, ">="))
    return rows


def print_targets(results: dict, args) -> None:
    rows = targets(results)
    if not rows:
        return
    print(f"\n## issue 18 targets (limits from this run: in-process p50 {results['in_process_ms']['p50']:.3f} ms "
          f"+ {LATENCY_SLACK_MS} ms; {BATCHED_RPS:.0f} req/s at concurrency {BATCHED_CONCURRENCY} with batching; "
          f"load generator on the same {results['cpus']} cores)")
    print("\n| figure | value | limit | value / limit | reached |\n|---|---:|---:|---:|---|")
    for name, value, limit, rel in rows:
        ok = value <= limit if rel == "<=" else value >= limit
        print(f"| {name} | {value:.3f} | {rel} {limit:.3f} | {value / limit:.2f} | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    sys.exit(main())
