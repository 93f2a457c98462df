"""``adpush run``: the whole flow on embedded defaults, stage by stage, resumable.

Each stage reads the previous stage's outputs from the run directory and leaves a marker in
``RUN/.stages/<stage>.json`` (with the config it ran under) when it finishes; a re-run skips
finished stages whose config is unchanged (``--force`` redoes them), so an interrupted run
resumes where it stopped. ``adpush config show`` prints the effective configuration.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from adpush.stages import STAGES, RunContext, Stage
from adpush.summary import result_line, print_summary
from adpush_core.errors import UserError


def _fingerprint(config: dict, tables: tuple[str, ...], upstream: str) -> str:
    payload = json.dumps({t: config.get(t) for t in tables} | {"upstream": upstream},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# A stage that may run beside the one before it: the two trainings read only the built data, and
# each keeps about one of make demo's two cores busy (user time ~ wall time when run alone).
BESIDE_PREVIOUS = {"train_cascade": "train_sf"}


def run_stages(ctx: RunContext, force: bool = False, only: set[str] | None = None,
               stages: tuple[Stage, ...] = STAGES) -> dict:
    """Run the stages in order, skipping finished ones; with ``[train] parallel`` the
    CTR->CVR training runs beside the SF training, its console in ``RUN/train/cascade.log``."""
    markers = ctx.path(".stages")
    markers.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    todo: list[tuple[int, Stage, str, Path]] = []
    upstream = ""
    for index, stage in enumerate(stages, start=1):
        fingerprint = _fingerprint(ctx.config, stage.tables, upstream)
        upstream = fingerprint
        marker = markers / f"{stage.name}.json"
        if only and stage.name not in only:
            if marker.is_file():
                results[stage.name] = json.loads(marker.read_text())["result"]
            continue
        if marker.is_file() and not force:
            saved = json.loads(marker.read_text())
            if saved.get("fingerprint") == fingerprint:
                print(f"[{index}/{len(stages)}] {stage.name}: already done, skipping "
                      f"(--force redoes it)")
                results[stage.name] = saved["result"]
                continue
        if marker.is_file():  # finished under another config, or --force: start it afresh
            import shutil

            for output in stage.outputs:
                shutil.rmtree(ctx.path(output), ignore_errors=True)
            marker.unlink()
        todo.append((index, stage, fingerprint, marker))

    def run_one(index, stage, fingerprint, marker, stage_ctx=ctx):
        start = time.perf_counter()
        result = stage.run(stage_ctx)
        seconds = time.perf_counter() - start
        result["seconds"] = round(seconds, 1)
        marker.write_text(json.dumps({"fingerprint": fingerprint, "result": result}, indent=2))
        results[stage.name] = result
        line = result_line(stage.name, result)
        print(f"[{index}/{len(stages)}] {stage.name}: done in {seconds:.1f} s"
              + (f": {line}" if line else ""), flush=True)

    parallel = bool(ctx.config.get("train", {}).get("parallel", False))
    i = 0
    while i < len(todo):
        index, stage, fingerprint, marker = todo[i]
        nxt = todo[i + 1] if i + 1 < len(todo) else None
        if parallel and nxt is not None and BESIDE_PREVIOUS.get(nxt[1].name) == stage.name:
            log = ctx.path("train", f"{nxt[1].name.removeprefix('train_')}.log")
            print(f"[{nxt[0]}/{len(stages)}] {nxt[1].name}: {nxt[1].help}, beside "
                  f"{stage.name} (its console: {log}) ...", flush=True)
            print(f"[{index}/{len(stages)}] {stage.name}: {stage.help} ...", flush=True)
            _run_beside(lambda: run_one(*nxt, stage_ctx=dataclasses.replace(ctx, log=log)),
                        lambda: run_one(index, stage, fingerprint, marker))
            i += 2
            continue
        print(f"[{index}/{len(stages)}] {stage.name}: {stage.help} ...", flush=True)
        run_one(index, stage, fingerprint, marker)
        i += 1
    return {stage.name: results[stage.name] for stage in stages if stage.name in results}


def _run_beside(background: Callable[[], None], foreground: Callable[[], None]) -> None:
    """Run ``background`` in a thread while ``foreground`` runs; wait for both, then raise the
    first failure (the foreground's if both failed)."""
    import threading

    failure: list[BaseException] = []

    def target():
        try:
            background()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="adpush-run-beside", daemon=True)
    thread.start()
    try:
        foreground()
    finally:
        thread.join()
    if failure:
        raise failure[0]


# --- CLI --------------------------------------------------------------------------------------
def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="the whole flow end to end on embedded defaults (what `make demo` runs)",
        description=__doc__.split("\n\n")[0])
    run.add_argument("--config", type=Path, help="TOML overriding the embedded defaults")
    run.add_argument("--out", type=Path, help="run directory (default runs/<timestamp>)")
    run.add_argument("--seed", type=int, help="seed for every stage (default: [run] seed)")
    run.add_argument("--force", action="store_true", help="redo finished stages")
    run.add_argument("--stage", action="append", choices=[s.name for s in STAGES],
                     help="run only this stage (repeatable); earlier outputs are read from --out")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=_run_command)

    config = subparsers.add_parser("config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser("show", help="print the effective config as TOML")
    show.add_argument("--config", type=Path)
    show.set_defaults(func=_config_show)


def _config_show(args: argparse.Namespace) -> int:
    from adpush.config import dumps, load_config

    print(dumps(load_config(args.config)), end="")
    return 0


def _run_command(args: argparse.Namespace) -> int:
    from adpush.config import load_config

    config = load_config(args.config, seed=args.seed)
    run_dir = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if args.stage and not args.out:
        raise UserError("--stage needs --out: the run directory holding the earlier stages")
    ctx = RunContext(run_dir=run_dir, config=config, seed=int(config["run"]["seed"]),
                     progress=not args.no_progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    from adpush.config import dumps

    (run_dir / "config.toml").write_text(dumps(config))
    results = run_stages(ctx, force=args.force, only=set(args.stage or ()))
    from adpush.run_report import write_run_report

    report = write_run_report(run_dir, results)
    print_summary(ctx, results)
    print(f"  run report: {report['html']} (+ report.md, report.json)")
    return 0
