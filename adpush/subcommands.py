"""How ``adpush run`` calls a stage: through the handler ``adpush <subcommand>`` calls.

Every stage calls the same handler the CLI does (its argparse parser, then ``args.func(args)``).
The stages that load TensorFlow run it in a child process started with ``spawn``: the two
trainings run beside each other, each with its own TensorFlow runtime, seed and op determinism,
and the LR baseline beside them at a lower CPU priority.
"""
from __future__ import annotations

from pathlib import Path

from adpush_core.errors import UserError


def call_subcommand(argv: list[str]) -> None:
    """Run ``adpush <argv>``'s handler in this process; a non-zero status is a UserError."""
    from adpush.cli import build_parser

    args = build_parser().parse_args(list(argv))
    status = int(args.func(args) or 0)
    if status:
        raise UserError(f"adpush {' '.join(argv)} returned {status}")


def _subcommand_child(argv: list[str], log: str | None, niceness: int) -> None:
    """A spawned stage process: its output to ``log`` (if any), then ``call_subcommand``."""
    import os
    import sys

    if niceness:
        os.nice(niceness)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    from adpush import console
    from adpush_core.tfenv import KerasVersionError

    console.quiet()
    try:
        call_subcommand(argv)
    except (UserError, KerasVersionError) as err:
        print(f"adpush {argv[0]}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        sys.stdout.flush()


def start_subcommand(argv: list[str], log: Path | None = None, niceness: int = 0):
    """Start ``adpush <argv>``'s handler in a spawned process; returns the Process."""
    import multiprocessing

    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    process = multiprocessing.get_context("spawn").Process(
        target=_subcommand_child, args=(list(argv), str(log) if log else None, niceness),
        name=f"adpush {' '.join(argv[:2])}")
    process.start()
    return process


def wait_subcommand(process, argv: list[str], log: Path | None = None) -> None:
    """Wait for a stage process; a failure is a UserError naming the command and its log."""
    process.join()
    if process.exitcode != 0:
        raise UserError(f"stage command failed (exit {process.exitcode}): adpush "
                        + " ".join(argv) + (f" (its output: {log})" if log else ""))
