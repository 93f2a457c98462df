"""``adpush run``: the whole flow on embedded defaults, stage by stage, resumable.

Each stage reads the previous stage's outputs from the run directory and leaves a marker in
``RUN/.stages/<stage>.json`` (with the config it ran under) when it finishes; a re-run skips
finished stages whose config is unchanged (``--force`` redoes them), so an interrupted run
resumes where it stopped. ``adpush config show`` prints the effective configuration.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adpush.errors import UserError


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    tables: tuple[str, ...]          # config tables whose change invalidates this stage
    run: Callable[["RunContext"], dict]


@dataclass
class RunContext:
    run_dir: Path
    config: dict
    seed: int
    progress: bool = True

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)


# --- stages -----------------------------------------------------------------------------------
def stage_simulate(ctx: RunContext) -> dict:
    from abtest.world.logs import OutputDirError, simulate_logs
    from adpush.config import world_config

    try:
        manifest = simulate_logs(ctx.path("logs"), world_config(ctx.config), seed=ctx.seed,
                                 progress=ctx.progress)
    except OutputDirError as err:
        raise UserError(str(err)) from err
    return {"logs": str(ctx.path("logs")),
            "rows": {name: info["rows"] for name, info in manifest["files"].items()}}


def stage_build(ctx: RunContext) -> dict:
    from beam_pipelines.config import BuildConfig
    from beam_pipelines.pipeline import build_data

    beam = ctx.config["beam"]
    overrides = {"min_count": beam["min_count"]}
    if beam["split"] == "last_days":
        overrides["test_days"] = beam["test_days"]
    elif beam["split"] == "fractions":
        overrides["split_fractions"] = tuple(beam["fractions"])
    else:
        raise UserError(f"[beam] split must be 'fractions' or 'last_days', got {beam['split']!r}")
    data = ctx.path("data")
    if data.exists():  # a half-finished earlier attempt: Beam output is rebuilt whole
        import shutil

        shutil.rmtree(data)
    result = build_data("world", [str(ctx.path("logs"))], str(data),
                        BuildConfig(seed=ctx.seed, **overrides),
                        beam_args=[f"--runner={beam['runner']}"])
    counts = {name: dataset["row_counts"] for name, dataset in result.spec["datasets"].items()}
    rejected = result.stats["rows_rejected"]["total"]
    return {"data": str(data), "row_counts": counts, "rejected": rejected}


STAGES: tuple[Stage, ...] = (
    Stage("simulate", "simulate the world's raw logs", ("run", "world"), stage_simulate),
    Stage("build", "Beam (FnApiRunner): logs -> TFRecords, vocabularies, spec.json",
          ("beam",), stage_build),
)


# --- driver -----------------------------------------------------------------------------------
def _fingerprint(config: dict, tables: tuple[str, ...], upstream: str) -> str:
    payload = json.dumps({t: config.get(t) for t in tables} | {"upstream": upstream},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_stages(ctx: RunContext, force: bool = False, only: set[str] | None = None) -> dict:
    markers = ctx.path(".stages")
    markers.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    upstream = ""
    for index, stage in enumerate(STAGES, start=1):
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
                print(f"[{index}/{len(STAGES)}] {stage.name}: already done, skipping "
                      f"(--force redoes it)")
                results[stage.name] = saved["result"]
                continue
        print(f"[{index}/{len(STAGES)}] {stage.name}: {stage.help} ...", flush=True)
        start = time.perf_counter()
        result = stage.run(ctx)
        seconds = time.perf_counter() - start
        result["seconds"] = round(seconds, 1)
        marker.write_text(json.dumps({"fingerprint": fingerprint, "result": result}, indent=2))
        results[stage.name] = result
        print(f"[{index}/{len(STAGES)}] {stage.name}: done in {seconds:.1f} s", flush=True)
    return results


def print_summary(ctx: RunContext, results: dict) -> None:
    print("\nadpush run summary")
    print(f"  run directory: {ctx.run_dir}")
    for name, result in results.items():
        print(f"  {name:<10} {result.get('seconds', 0):>7.1f} s")
    if "simulate" in results:
        rows = results["simulate"]["rows"]
        print(f"  logs: {results['simulate']['logs']} "
              f"({rows['sf_impressions.csv']:,} SF impressions, "
              f"{rows['ad_impressions.csv']:,} ad impressions, "
              f"{rows['behaviour.csv']:,} behaviour events)")
    if "build" in results:
        counts = results["build"]["row_counts"]
        text = ", ".join(f"{name} {sum(c.values()):,}" for name, c in counts.items())
        print(f"  data: {results['build']['data']} ({text} examples; "
              f"{results['build']['rejected']} rows dead-lettered)")


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
    print_summary(ctx, results)
    return 0
