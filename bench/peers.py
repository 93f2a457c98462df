"""Peers: simple, strong non-neural models trained and scored on the same rows as a family.

    .venv/bin/python bench/peers.py cascade --data DATA [--oracle LOGS] [--seeds 3] [--compare DIR]

Subcommands (one module each): ``cascade`` — LightGBM for click and conversion on the
``sequence`` dataset (bench/peers_cascade.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    import peers_cascade  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="family", required=True)
    cascade = sub.add_parser("cascade", help="LightGBM peer of the CTR→CVR models (000)",
                             description=peers_cascade.__doc__.split("\n\n")[0])
    peers_cascade.add_arguments(cascade)
    cascade.set_defaults(func=peers_cascade.run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
