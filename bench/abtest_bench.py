"""A/B simulator speed: 40M displays per experiment on the default world (50k users).

    python bench/abtest_bench.py [--seed 0] [--displays 40000000] [--repeats 3]

Prints, medians of --repeats runs: the one-off pool cost (display contexts + title-only logits,
shared by every experiment of a scenario), seconds per experiment with non-model policies
(title only vs random / popular SPs), and the cost of the personalised policy with the oracle
scorer (scoring every user x slot x candidate once). numpy's Bernoulli draws for 40M displays
alone are printed for scale.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abtest.simulator.policies import OracleScorer, Policy, keyword_click_counts  # noqa: E402
from abtest.simulator.traffic import DisplayPool, Experiment, simulate_experiment  # noqa: E402
from abtest.world import World, WorldConfig  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--displays", type=int, default=40_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slots", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    world = World.build(WorldConfig(), args.seed)

    pool, sample_s = timed(lambda: DisplayPool.sample(world, args.slots, rng))
    _, logit_s = timed(lambda: pool.base_logit(world))
    print(f"pool: {world.n_users:,} users x {args.slots} slots; sampling {sample_s:.2f} s, "
          f"title-only logits {logit_s:.2f} s (once per scenario)")
    _, draws_s = timed(lambda: rng.random(args.displays) < 0.05)
    print(f"numpy Bernoulli draws for {args.displays:,} displays, for scale: {draws_s:.2f} s")

    clicks = keyword_click_counts(world, rng)
    cases = {
        "title_only vs random_sps(2)": (Policy("title_only"), Policy("random_sps", 2)),
        "popular_sps(2) vs random_sps(3)": (Policy("popular_sps", 2, keyword_clicks=clicks),
                                            Policy("random_sps", 3)),
    }
    for name, (control, treatment) in cases.items():
        times = []
        for repeat in range(args.repeats):
            result, seconds = timed(lambda: simulate_experiment(
                world, pool, Experiment(name, control, treatment, displays=args.displays), rng))
            times.append(seconds)
        print(f"{name}: median {statistics.median(times):.2f} s for {result.displays:,} displays "
              f"({', '.join(f'{t:.2f}' for t in times)})")

    oracle = OracleScorer(world)
    _, score_s = timed(lambda: pool.scores(world, oracle))
    experiment = Experiment("personalised", Policy("title_only"),
                            Policy("personalised_sps", 2, scorer=oracle), displays=args.displays)
    result, run_s = timed(lambda: simulate_experiment(world, pool, experiment, rng))
    rows = pool.n_users * pool.slots
    print(f"personalised_sps(2), oracle scorer: scoring {rows:,} (user, slot) rows "
          f"{score_s:.2f} s once per scorer, then {run_s:.2f} s per experiment")


if __name__ == "__main__":
    main()
