"""``adpush simulate-logs``: write the world's raw logs (docs/contracts.md §1)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from adpush_core.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate-logs",
        help="write raw logs of the simulated marketplace (users, ads, SF/ad impressions, "
             "behaviour events, oracle probabilities)",
        description="Simulate the marketplace world and write its raw logs as CSV, with true "
                    "click probabilities under DIR/oracle/ and a manifest.json.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory (new or empty)")
    parser.add_argument("--users", type=int, help="number of users (default: the config's)")
    parser.add_argument("--days", type=int, help="number of days (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--config", type=Path,
                        help="TOML file with world parameters (a [world] table or bare keys)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def load_world_config(config_path: Path | None, users: int | None = None,
                      days: int | None = None):
    from abtest.world.config import WorldConfig

    config = WorldConfig.from_toml(config_path) if config_path else WorldConfig()
    overrides = {k: v for k, v in (("n_users", users), ("days", days)) if v is not None}
    return config.replace(**overrides) if overrides else config


def run(args: argparse.Namespace) -> int:
    from abtest.world.logs import OutputDirError, simulate_logs

    config = load_world_config(args.config, args.users, args.days)
    try:
        manifest = simulate_logs(args.out, config, seed=args.seed, progress=not args.no_progress)
    except OutputDirError as err:
        raise UserError(str(err)) from err
    rows = {name: info["rows"] for name, info in manifest["files"].items()}
    print(f"wrote world logs (seed {args.seed}, {config.n_users} users, {config.days} days) "
          f"to {args.out}:")
    for name, count in rows.items():
        print(f"  {name:<28} {count:>10,} rows")
    print(f"  manifest.json                (parameters, seed, row counts, sha256)")
    print("next: adpush build-data --source world --input "
          f"{args.out} --out <data dir>   (Beam: TFRecords + vocabularies + spec.json)")
    return 0


