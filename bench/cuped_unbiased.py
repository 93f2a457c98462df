"""Is CUPED on the simulator's pre-period unbiased, and is its SE right?

    python bench/cuped_unbiased.py --reps 60 --seed 0

Repeats experiment No.1 of 001 Table 2 (title only vs personalised 2 SPs, the world's oracle
scorer) on the demo-sized world with fresh traffic, salt and pre-period each time, and prints the
true relative lift (from the expected click and display rates of both policies over all users)
beside the mean, SD and mean SE of the unadjusted and the CUPED lift.
"""
from __future__ import annotations

import argparse

import numpy as np

from abtest.simulator.policies import OracleScorer, Policy
from abtest.simulator.traffic import (DisplayPool, Experiment, click_probability, simulate_experiment,
                                      user_day_rates)
from abtest.stats.comparison import compare
from abtest.world import World, WorldConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--displays", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--pre-days", type=int, default=14)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args(argv)

    world = World.build(WorldConfig().replace(n_users=args.users, n_ads=4000), seed=args.seed)
    rng = np.random.default_rng(args.seed)
    pool = DisplayPool.sample(world, args.slots, rng)
    control, treatment = Policy("title_only"), Policy("personalised_sps", k=2, scorer=OracleScorer(world))
    users = np.arange(world.n_users)
    rates = []
    for policy in (control, treatment):
        p = click_probability(world, pool, policy, users, rng).reshape(-1, args.slots)
        clicks, no_clicks = user_day_rates(world, p, args.displays, args.days)
        rates.append(clicks.sum() / (clicks + no_clicks).sum())
    true = rates[1] / rates[0] - 1

    plain, adjusted, se_plain, se_adjusted = [], [], [], []
    for rep in range(args.reps):
        experiment = Experiment("No.1", control, treatment, "c", "t", displays=args.displays, days=args.days,
                                salt=f"unbiased-{args.seed}-{rep}")
        result = simulate_experiment(world, pool, experiment, np.random.default_rng([args.seed, rep]),
                                     pre_days=args.pre_days, pre_rng=np.random.default_rng([args.seed, rep, 1]))
        stats = result.stats()
        c = compare("c", stats["c"], "t", stats["t"])
        plain.append(c.relative_lift)
        adjusted.append(c.relative_lift_cuped)
        se_plain.append(c.se_lift)
        se_adjusted.append(c.se_lift_cuped)
    print(f"true lift {100 * true:+.2f}% ({args.reps} experiments of {args.users} users, "
          f"{args.displays:,} displays over {args.days} days, {args.pre_days}-day pre-period)")
    for name, values, ses in (("unadjusted", plain, se_plain), ("CUPED", adjusted, se_adjusted)):
        values = np.array(values)
        print(f"{name:>10}: mean {100 * values.mean():+.2f}% ± {100 * values.std(ddof=1) / np.sqrt(values.size):.2f} "
              f"(mean − true {100 * (values.mean() - true):+.2f} pp), SD {100 * values.std(ddof=1):.2f} pp, "
              f"mean SE {100 * np.mean(ses):.2f} pp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
