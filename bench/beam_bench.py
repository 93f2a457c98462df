"""Throughput of the build-data sequence job vs. a plain single-process loop (the limit).

    python bench/beam_bench.py --rows 1000000 --seed 0

1. Writes ``--rows`` synthetic Taobao UserBehavior rows (user-sorted like the original file,
   ~90% pv, ~1% bad rows of 4 kinds) into ``--workdir``.
2. Runs, each in its own process so peak memory is its own: the plain loop (same parser, same
   SequenceExample builder, ``tf.io.TFRecordWriter`` with GZIP), then ``build_data`` on
   FnApiRunner in_memory and with ``--direct_running_mode=multi_processing``.
3. Prints rows/s, the ratio to the loop (BEAM_NOTES §2: ~0.42x as naively written) and peak
   RSS (process + its children).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = 1511539200
DAYS = 9


def generate(path: Path, rows: int, seed: int) -> dict:
    """User-sorted synthetic rows; returns counts of what was written."""
    rng = random.Random(seed)
    users = max(1, rows // 50)
    behaviours = ["pv"] * 90 + ["cart"] * 5 + ["fav"] * 3 + ["buy"] * 2
    bad_kinds = [lambda u: f"{u},1,2,pv", lambda u: f"{u},x,2,pv,{START + 5}",
                 lambda u: f"{u},1,2,like,{START + 5}", lambda u: f"{u},1,2,pv,1400000000"]
    written = bad = 0
    with open(path, "w") as fh:
        for user in range(1, users + 1):
            n = rows // users + (1 if user <= rows % users else 0)
            items = [rng.randrange(200_000) for _ in range(12)]
            ts = sorted(rng.randrange(START, START + DAYS * 86400) for _ in range(n))
            lines = []
            for t in ts:
                if rng.random() < 0.01:
                    lines.append(rng.choice(bad_kinds)(user))
                    bad += 1
                    continue
                item = rng.choice(items)
                lines.append(f"{user},{item},{item % 5000},{rng.choice(behaviours)},{t}")
            fh.write("\n".join(lines) + "\n")
            written += n
    return {"rows": written, "bad_rows": bad, "users": users}


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def run_limit(data: Path, out: Path) -> dict:
    """The same parse + build + serialize in one plain Python loop."""
    import tensorflow as tf

    from beam_pipelines.config import BuildConfig
    from beam_pipelines.dead_letter import BadRow
    from beam_pipelines.sequence_examples import build_user_sequences
    from beam_pipelines.split_by_day import day_splits, make_window

    config = BuildConfig()
    window = make_window(START, START, START + DAYS * 86400)
    names = day_splits(window[3], config)
    t0 = time.perf_counter()
    users: dict[int, list] = {}
    from beam_pipelines.sources.behaviour import parse_behaviour

    rejected = 0
    with open(data, "rb") as fh:
        for raw in fh:
            try:
                user, event = parse_behaviour(raw.rstrip(b"\r\n").decode("utf-8"), window)
            except (BadRow, UnicodeDecodeError):
                rejected += 1
                continue
            users.setdefault(user, []).append(event)
    out.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = {s: tf.io.TFRecordWriter(str(out / f"{s}.tfrecord.gz"), options) for s in set(names)}
    n = 0
    for user in sorted(users):
        records, _ = build_user_sequences(user, users[user], window[0], config.max_history)
        for day, _, _, _, _, payload in records:
            writers[names[day]].write(payload)
            n += 1
    for w in writers.values():
        w.close()
    return {"seconds": time.perf_counter() - t0, "records": n, "rejected": rejected}


def run_beam(data: Path, out: Path, multi_processing: bool) -> dict:
    from beam_pipelines.pipeline import build_data

    beam_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"] if multi_processing else []
    t0 = time.perf_counter()
    result = build_data("taobao", [str(data)], out, beam_args=beam_args)
    seconds = time.perf_counter() - t0
    rows = result.spec["datasets"]["sequence"]["row_counts"]
    return {"seconds": seconds, "records": sum(rows.values()),
            "rejected": result.stats["rows_rejected"]["total"]}


def _child(mode: str, data: Path, out: Path) -> None:
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    if mode == "limit":
        result = run_limit(data, out)
    else:
        result = run_beam(data, out, multi_processing=(mode == "beam_multi_processing"))
    result["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/adpush_beam_bench")
    parser.add_argument("--modes", default="limit,beam_in_memory,beam_multi_processing")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    data = work / f"behaviour_{args.rows}_{args.seed}.csv"
    if args.child:
        _child(args.child, data, work / args.child)
        return 0
    work.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        print(f"generating {args.rows} rows -> {data}", flush=True)
        print(json.dumps(generate(data, args.rows, args.seed)), flush=True)
    results = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    for mode in args.modes.split(","):
        shutil.rmtree(work / mode, ignore_errors=True)
        proc = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--seed", str(args.seed),
                               "--workdir", str(work), "--child", mode],
                              capture_output=True, text=True, env=env, check=False)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(line[0][7:])
        r = results[mode]
        print(f"{mode:24s} {r['seconds']:8.1f} s  {args.rows / r['seconds']:9.0f} rows/s  "
              f"{r['records']} examples  rejected {r['rejected']}  peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    if "limit" in results:
        for mode in results:
            if mode != "limit":
                ratio = results["limit"]["seconds"] / results[mode]["seconds"]
                print(f"ratio {mode} / limit: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
