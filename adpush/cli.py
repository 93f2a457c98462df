"""The ``adpush`` command line: one top-level parser, subcommands registered by each package.

Each module in SUBCOMMAND_MODULES exposes ``register(subparsers)``; see docs/contracts.md §3.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from adpush import __version__, console
from adpush_core import tfenv
from adpush_core.errors import UserError

SUBCOMMAND_MODULES = (
    "abtest.world.cli",        # simulate-logs
    "beam_pipelines.cli",      # build-data
    "tfrs_models.cli",         # train, evaluate, compare
    "serving.cli",             # export, serve
    "abtest.cli",              # abtest analyze|aa|run
    "adpush.run",              # run, config
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adpush",
        description="Personalised selling-point keywords for ad titles: data, models, serving, A/B.",
    )
    parser.add_argument("--version", action="version", version=f"adpush {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ and Python log lines (hidden by default); may also "
                             "follow the subcommand, e.g. adpush run --verbose")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _take_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """``--verbose`` anywhere before a ``--`` (so ``adpush run --verbose`` works too)."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--verbose"]
    return head + argv[end:], len(head) < end


def main(argv: list[str] | None = None) -> int:
    """The ``adpush`` command. Run as a program (``argv`` None) it also quiets TensorFlow's log
    noise unless ``--verbose`` (``adpush.console``); called with ``argv`` (tests) it leaves the
    process's streams alone."""
    as_program = argv is None
    argv, verbose = _take_verbose(list(sys.argv[1:] if argv is None else argv))
    if verbose:
        console.set_verbose()
    if as_program:
        console.quiet()
    tfenv.select_legacy_keras()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, tfenv.KerasVersionError) as err:
        print(f"adpush {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"adpush {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
