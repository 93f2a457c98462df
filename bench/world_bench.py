"""Impressions generated per second by the world, and peak memory, for >= 5M impressions.

    python bench/world_bench.py [--seed 0] [--min-impressions 5000000] [--write-dir DIR]

Prints the generation rate (SF + ad impressions with their true probabilities and clicks, no
I/O), the rate of the full `simulate-logs` run including CSV writing when --write-dir is given,
and the process's peak RSS. Medians over --repeats runs.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abtest.world import World, WorldConfig  # noqa: E402
from abtest.world.logs import simulate_logs, simulate_search_day  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(world: World, min_impressions: int, seed: int) -> tuple[int, float]:
    rng = np.random.default_rng(seed)
    total, day, start = 0, 0, time.perf_counter()
    while total < min_impressions:
        traffic = simulate_search_day(world, day % world.config.days, rng)
        total += traffic.sf["user_id"].size + traffic.ads["user_id"].size
        day += 1
    return total, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-impressions", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true",
                        help="also time a full simulate-logs run (CSV writing included)")
    args = parser.parse_args()

    config = WorldConfig()
    start = time.perf_counter()
    world = World.build(config, args.seed)
    build_s = time.perf_counter() - start
    rates = []
    for repeat in range(args.repeats):
        total, seconds = generate(world, args.min_impressions, args.seed + repeat)
        rates.append(total / seconds)
        print(f"run {repeat}: {total:,} impressions in {seconds:.2f} s = {total / seconds:,.0f}/s")
    print(f"world build (50k users, 20k ads): {build_s:.2f} s")
    print(f"generation median: {statistics.median(rates):,.0f} impressions/s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}; {args.repeats} runs of "
          f">= {args.min_impressions:,})")
    if args.write:
        out = Path(tempfile.mkdtemp()) / "logs"
        start = time.perf_counter()
        manifest = simulate_logs(out, config, seed=args.seed, progress=False)
        seconds = time.perf_counter() - start
        rows = sum(manifest["files"][n]["rows"] for n in ("sf_impressions.csv",
                                                          "ad_impressions.csv", "behaviour.csv"))
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"simulate-logs default world with CSV writing: {rows:,} log rows in {seconds:.1f} s "
              f"= {rows / seconds:,.0f} rows/s, {size / 1e6:,.0f} MB on disk")
        shutil.rmtree(out.parent)
    print(f"peak RSS: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
