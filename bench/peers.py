"""Standard peers trained on the same rows as adpush's models, scored on the same test rows.

    python bench/peers.py sf --data W/data --runs W/table/amtdl_pretrain_finetune   # bench/peers_sf.py
    python bench/peers.py cascade ...                                               # bench/peers_cascade.py

Each subcommand's logic lives in its own module (``peers_<name>.py``: ``add_arguments``, ``run``).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SUBCOMMANDS = {"sf": "peers_sf", "cascade": "peers_cascade"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        module = modules[name] = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=(module.__doc__ or "").split("\n")[0]))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    raise SystemExit(main())
