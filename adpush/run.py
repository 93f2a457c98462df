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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adpush_core.errors import UserError
from tfrs_models import run_dir as run_files


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    tables: tuple[str, ...]          # config tables whose change invalidates this stage
    run: Callable[["RunContext"], dict]
    # RUN subdirectories a redo of a finished stage deletes first (a training resumes from its
    # checkpoints only when it was interrupted, never across a changed config or --force).
    outputs: tuple[str, ...] = ()


@dataclass
class RunContext:
    run_dir: Path
    config: dict
    seed: int
    progress: bool = True
    log: Path | None = None          # stage subcommands write here instead of the console

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


# --- how stages call the subcommands -----------------------------------------------------------
# Every stage calls the same handler ``adpush <subcommand>`` calls (its argparse parser, then
# ``args.func(args)``). The stages that load TensorFlow run it in a child process started with
# ``spawn``: the two trainings run beside each other, each with its own TensorFlow runtime, seed
# and op determinism, and the LR baseline beside them at a lower CPU priority.
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


def _subcommand(ctx: RunContext, *args: str) -> None:
    """Run one stage's subcommand in a spawned process and wait for it."""
    argv = list(args)
    if not ctx.progress and argv[:2] in (["train", "sf"], ["train", "cascade"]):
        argv.append("--quiet")
    wait_subcommand(start_subcommand(argv, ctx.log), argv, ctx.log)


def stage_train_sf(ctx: RunContext) -> dict:
    train = ctx.config["train"]
    run_dir = ctx.path("train", "sf")
    # The LR baseline needs only the data: fit it beside the training, at a lower priority so
    # it takes the core the trainings leave idle (once train_cascade ends), not theirs.
    baseline_log = ctx.path("train", "sf_baseline.log")
    baseline = start_subcommand(["evaluate", "--baseline-only", "--run-dir", str(run_dir),
                                 "--data", str(ctx.path("data"))], baseline_log, niceness=10)
    try:
        _subcommand(ctx, "train", "sf", "--model", train["model"], "--strategy", train["strategy"],
                "--data", str(ctx.path("data")), "--run-dir", str(run_dir),
                "--seed", str(ctx.seed), "--epochs", str(train["sf_epochs"]),
                "--pretrain-epochs", str(train["sf_pretrain_epochs"]),
                "--patience", str(train["sf_patience"]),
                "--learning-rate", str(train["sf_learning_rate"]),
                "--batch-size", str(train["batch_size"]),
                "--distribution", train["distribution"], *train["sf_args"].split())
    except BaseException:
        baseline.kill()
        baseline.join()
        raise
    baseline.join()
    if baseline.exitcode != 0:
        print(f"  the LR baseline fit beside the training failed (exit {baseline.exitcode}, "
              f"its output: {baseline_log}); the evaluation fits it again", flush=True)
    _subcommand(ctx, "evaluate", "--run-dir", str(run_dir), "--data", str(ctx.path("data")),
            "--oracle", str(ctx.path("logs")), "--seed", str(ctx.seed))
    test = run_files.read(run_dir, run_files.METRICS)["test"]
    return {"run_dir": str(run_dir), "auc": test["model"]["auc"], "oracle_auc": test["oracle"]["auc"]}


def stage_train_cascade(ctx: RunContext) -> dict:
    train = ctx.config["train"]
    run_dir = ctx.path("train", "cascade")
    _subcommand(ctx, "train", "cascade", "--model", train["cascade_model"], "--encoder",
            train["cascade_encoder"], "--data", str(ctx.path("data")), "--run-dir", str(run_dir),
            "--seed", str(ctx.seed), "--epochs", str(train["epochs"]),
            "--distribution", train["distribution"], "--oracle", str(ctx.path("logs")))
    test = run_files.read(run_dir, run_files.METRICS)["test"]
    return {"run_dir": str(run_dir), "metrics": test["model"], "oracle": test["oracle"]}


def stage_export(ctx: RunContext) -> dict:
    """Publish both models through the export gate ([serve] gate_sf / gate_cascade; "" = off)."""
    from serving.errors import ExportError
    from serving.gate import gated_export, parse_gate

    serve = ctx.config["serve"]
    base = ctx.path("models")
    exported = {}
    for name, run, gate in ((serve["model_name_sf"], "sf", serve["gate_sf"]),
                            (serve["model_name_cascade"], "cascade", serve["gate_cascade"])):
        run_dir = ctx.path("train", run)
        try:
            thresholds = parse_gate(gate) if gate else None
            path, summary = gated_export(run_dir, base, name, thresholds)
        except ExportError as err:
            raise UserError(str(err)) from err
        exported[name] = str(path)
        if thresholds is None:
            summary = f"export gate off ([serve] gate_{run} = \"\")"
        print(f"  exported {run_dir} -> {path}; {summary}")
    return {"model_base_path": str(base), "versions": exported}


def abtest_scenario(ab: dict):
    """The ``[abtest]`` table's scenario: each experiment's own displays and the scenario's slots
    unless the table sets them (> 0), and the table's pre-period."""
    from abtest.simulator.scenario import load_scenario

    for key in ("displays_per_experiment", "slots", "pre_days"):
        if int(ab[key]) < 0:
            raise UserError(f"[abtest] {key} must be >= 0 (0 = the scenario's own), got {ab[key]!r}")
    scenario = load_scenario(ab["scenario"])
    if int(ab["displays_per_experiment"]) > 0:
        for experiment in scenario.experiments:
            experiment["displays"] = int(ab["displays_per_experiment"])
    if int(ab["slots"]) > 0:
        scenario.defaults["slots"] = int(ab["slots"])
    scenario.defaults["pre_days"] = int(ab["pre_days"])
    return scenario


def stage_abtest(ctx: RunContext) -> dict:
    from abtest.simulator.cli import world_from_args
    from abtest.simulator.scenario import run_scenario
    from abtest.simulator.scorers import make_scorer
    from serving.server_process import ServerProcess

    serve, ab = ctx.config["serve"], ctx.config["abtest"]
    name = serve["model_name_sf"]
    scenario = abtest_scenario(ab)
    world = world_from_args(ctx.path("logs"), None, ctx.seed)
    with ServerProcess(model_name=name, model_base_path=str(ctx.path("models", name)),
                       rest_api_port=serve["rest_api_port"], port=serve["grpc_port"],
                       log_path=str(ctx.path("serve.log"))) as server:
        print(f"  serving {name} at {server.rest_url} (REST) and {server.grpc_target} (gRPC)")
        scorer = make_scorer(f"rest://{server.rest_url.split('://', 1)[1]}/{name}", world,
                             ctx.path("logs"))
        outcome = run_scenario(world, scenario, scorer, ctx.seed, ctx.path("abtest"),
                               title="adpush demo: 001 Table 2 replayed on the world",
                               progress=ctx.progress)

    def lift_rows(comparisons):
        keys = ("relative_lift_cuped", "ci_low_cuped", "ci_high_cuped", "p_value_cuped",
                "variance_reduction_cuped")
        return [{"experiment": c.treatment.split(" ")[0], "control": c.control,
                 "treatment": c.treatment, "relative_lift": c.relative_lift, "ci_low": c.ci_low,
                 "ci_high": c.ci_high, "p_value": c.p_value, "displays": c.displays,
                 **{k: getattr(c, k) for k in keys}}
                for c in comparisons]

    rows = lift_rows(outcome["comparisons"])
    # The same experiments with the world's own appeal as the scorer (the ceiling), on the same
    # world, pool and random draws: how much of the reachable lift the served model gets.
    from abtest.simulator.policies import OracleScorer

    oracle = run_scenario(world, scenario, OracleScorer(world), ctx.seed, ctx.path("abtest_oracle"),
                          title="001 Table 2 on the world, the oracle scorer", progress=ctx.progress)
    return {"report": str(outcome["paths"]["html"]), "lifts": rows,
            "oracle_lifts": lift_rows(oracle["comparisons"]),
            "oracle_report": str(oracle["paths"]["html"]),
            "scorer_requests": scorer.stats["requests"],
            "scorer_seconds": round(scorer.stats["seconds"], 1)}


STAGES: tuple[Stage, ...] = (
    Stage("simulate", "simulate the world's raw logs", ("run", "world"), stage_simulate),
    Stage("build", "Beam (FnApiRunner): logs -> TFRecords, vocabularies, spec.json",
          ("beam",), stage_build),
    Stage("train_sf", "train + evaluate the selling-point model (001)", ("train",),
          stage_train_sf, outputs=("train/sf",)),
    Stage("train_cascade", "train the CTR->CVR model (000)", ("train",), stage_train_cascade,
          outputs=("train/cascade",)),
    Stage("export", "export both to a TF Serving model base path", ("serve",), stage_export),
    Stage("abtest", "serve the models locally and replay 001's A/B experiments over REST",
          ("serve", "abtest"), stage_abtest),
)


# --- driver -----------------------------------------------------------------------------------
def _fingerprint(config: dict, tables: tuple[str, ...], upstream: str) -> str:
    payload = json.dumps({t: config.get(t) for t in tables} | {"upstream": upstream},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# A stage that may run beside the one before it: the two trainings read only the built data, and
# each keeps about one of make demo's two cores busy (user time ~ wall time when run alone).
BESIDE_PREVIOUS = {"train_cascade": "train_sf"}


def run_stages(ctx: RunContext, force: bool = False, only: set[str] | None = None) -> dict:
    """Run the stages in order, skipping finished ones; with ``[train] parallel`` the
    CTR->CVR training runs beside the SF training, its console in ``RUN/train/cascade.log``."""
    markers = ctx.path(".stages")
    markers.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    todo: list[tuple[int, Stage, str, Path]] = []
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
        line = _result_line(stage.name, result)
        print(f"[{index}/{len(STAGES)}] {stage.name}: done in {seconds:.1f} s"
              + (f": {line}" if line else ""), flush=True)

    parallel = bool(ctx.config.get("train", {}).get("parallel", False))
    i = 0
    while i < len(todo):
        index, stage, fingerprint, marker = todo[i]
        nxt = todo[i + 1] if i + 1 < len(todo) else None
        if parallel and nxt is not None and BESIDE_PREVIOUS.get(nxt[1].name) == stage.name:
            log = ctx.path("train", f"{nxt[1].name.removeprefix('train_')}.log")
            print(f"[{nxt[0]}/{len(STAGES)}] {nxt[1].name}: {nxt[1].help}, beside "
                  f"{stage.name} (its console: {log}) ...", flush=True)
            print(f"[{index}/{len(STAGES)}] {stage.name}: {stage.help} ...", flush=True)
            _run_beside(lambda: run_one(*nxt, stage_ctx=dataclasses.replace(ctx, log=log)),
                        lambda: run_one(index, stage, fingerprint, marker))
            i += 2
            continue
        print(f"[{index}/{len(STAGES)}] {stage.name}: {stage.help} ...", flush=True)
        run_one(index, stage, fingerprint, marker)
        i += 1
    return {stage.name: results[stage.name] for stage in STAGES if stage.name in results}


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


def _result_line(stage: str, result: dict) -> str:
    """The one line a finished stage reports (the summary at the end has the details)."""
    try:
        if stage == "simulate":
            rows = result["rows"]
            return (f"{rows['sf_impressions.csv']:,} SF and {rows['ad_impressions.csv']:,} ad impressions, "
                    f"{rows['behaviour.csv']:,} behaviour events")
        if stage == "build":
            total = sum(sum(c.values()) for c in result["row_counts"].values())
            return f"{total:,} examples, {result['rejected']} rows dead-lettered"
        if stage == "train_sf":
            return f"test AUC {_fmt(result['auc'])} (oracle {_fmt(result['oracle_auc'])})"
        if stage == "train_cascade":
            m = result["metrics"]
            return (f"test click AUC {_fmt(m['click']['auc'])}, conversion AUC "
                    f"{_fmt(m['conversion']['auc'])}")
        if stage == "export":
            return ", ".join(f"{name} v{Path(path).name}" for name, path in result["versions"].items())
        if stage == "abtest":
            return f"{len(result['lifts'])} experiments, report {result['report']}"
    except (KeyError, TypeError, AttributeError):
        return ""
    return ""


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


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
    if "train_sf" in results:
        r = results["train_sf"]
        print(f"  selling-point model: test AUC {_fmt(r['auc'])} vs oracle {_fmt(r['oracle_auc'])}"
              f" ({r['run_dir']}/metrics.json, roc.png, training_curves.png)")
    if "train_cascade" in results:
        m, o = results["train_cascade"]["metrics"], results["train_cascade"]["oracle"]
        print(f"  CTR->CVR model: click AUC {_fmt(m['click']['auc'])} vs oracle "
              f"{_fmt(o['click']['auc'])}, conversion AUC {_fmt(m['conversion']['auc'])}"
              f" vs oracle {_fmt(o['conversion']['auc'])} "
              f"({results['train_cascade']['run_dir']}/metrics.json)")
    if "export" in results:
        print(f"  models: {results['export']['model_base_path']} "
              f"(adpush serve --model_config_file ... or tensorflow/serving)")
    if "abtest" in results:
        r = results["abtest"]
        print(f"  A/B report: {r['report']}")
        from abtest.report import console_line

        oracle = r.get("oracle_lifts") or [None] * len(r["lifts"])
        for row, best in zip(r["lifts"], oracle):
            print("    served " + console_line(row))
            if best is not None:
                # The share of the oracle's lift on the primary figure (CUPED when present).
                key = "relative_lift_cuped" if row.get("relative_lift_cuped") is not None \
                    else "relative_lift"
                p_key = "p_value_cuped" if key.endswith("cuped") else "p_value"
                if best.get(key) and (best.get(p_key) is None or best[p_key] < 0.05):
                    share = f"{100 * row[key] / best[key]:.0f}%"
                else:  # a share of a lift the oracle itself does not show means nothing
                    share = "- (the oracle's lift is not significant)"
                print("    oracle " + console_line(best) + f"  served/oracle {share}"
                      + (" (CUPED)" if key.endswith("cuped") else ""))
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
    from adpush.run_report import write_run_report

    report = write_run_report(run_dir, results)
    print_summary(ctx, results)
    print(f"  run report: {report['html']} (+ report.md, report.json)")
    return 0
