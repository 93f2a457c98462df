"""The stages of ``adpush run``, in order: what each runs and what it returns for the summary.

Each stage reads the previous stage's outputs from the run directory (``RunContext.path``); the
driver (``adpush.run``) decides which stages run and records their results.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adpush.subcommands import start_subcommand, wait_subcommand
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
