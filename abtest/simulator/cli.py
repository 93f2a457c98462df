"""``adpush abtest run --scenario FILE``: simulated experiments on the world, with a report."""
from __future__ import annotations

import argparse
from pathlib import Path

from adpush_core.errors import UserError


def register_abtest(commands) -> None:
    parser = commands.add_parser(
        "run", help="run a scenario of simulated A/B experiments on the world and report them",
        description="Simulate the experiments of a scenario file (e.g. the built-in 001 = "
                    "001 Table 2) on the world's traffic, with the personalised policy scored by "
                    "a served model, a SavedModel or the world's oracle.")
    parser.add_argument("--scenario", default="001",
                        help="scenario TOML file or built-in name (default 001)")
    world = parser.add_mutually_exclusive_group()
    world.add_argument("--logs", type=Path,
                       help="a simulate-logs directory: the A/B world is the one that wrote it")
    world.add_argument("--world-config", type=Path, help="world parameters (TOML)")
    parser.add_argument("--seed", type=int, default=0,
                        help="world seed when --world-config is used, and traffic seed")
    parser.add_argument("--scorer", default="oracle",
                        help="personalised SP scorer: oracle | rest://HOST:PORT/MODEL | "
                             "grpc://HOST:PORT/MODEL | saved_model:PATH (default oracle)")
    parser.add_argument("--pre-days", type=int, default=None,
                        help="simulate this many pre-period days (every user under the control "
                             "policy) and report CUPED-adjusted lifts beside the unadjusted ones "
                             "(default: the scenario's pre_days, 0 = none)")
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=_run)


def world_from_args(logs: Path | None, world_config: Path | None, seed: int):
    from abtest.world import World, WorldConfig
    from abtest.world.logs import read_world

    if logs is not None:
        return read_world(logs)
    config = WorldConfig.from_toml(world_config) if world_config else WorldConfig()
    return World.build(config, seed)


def _run(args: argparse.Namespace) -> int:
    from abtest.simulator.scenario import load_scenario, run_scenario
    from abtest.simulator.scorers import make_scorer

    scenario = load_scenario(args.scenario)
    if args.pre_days is not None:
        if args.pre_days < 0:
            raise UserError(f"--pre-days must be >= 0, got {args.pre_days}")
        scenario.defaults["pre_days"] = args.pre_days
        for experiment in scenario.experiments:
            experiment.pop("pre_days", None)
    world = world_from_args(args.logs, args.world_config, args.seed)
    scorer = make_scorer(args.scorer, world, args.logs)
    outcome = run_scenario(world, scenario, scorer, args.seed, args.out,
                           progress=not args.no_progress)
    from abtest.report import console_line, format_p

    for c in outcome["comparisons"]:
        print(f"{console_line(c.to_dict())}  (naive p={format_p(c.p_value_naive)})")
    print(f"report: {outcome['paths']['html']} (+ report.md, report.json)")
    return 0
