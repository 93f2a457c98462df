"""adpush abtest: analyse experiments, calibrate with A/A runs, aggregate logs with Beam, and
(``abtest/simulator/cli.py``) run simulated experiments on the world.

Heavy imports (matplotlib, Beam) happen inside the command functions (docs/contracts.md §3).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from abtest.simulator.cli import register_abtest


def register(subparsers) -> None:
    abtest = subparsers.add_parser("abtest", help="A/B statistics: analyze, aa, aggregate, run",
                                   description=__doc__.split("\n\n")[0])
    commands = abtest.add_subparsers(dest="abtest_command", metavar="ABTEST_COMMAND")
    abtest.set_defaults(func=lambda args: _print_help(abtest))
    _add_analyze(commands)
    _add_aa(commands)
    _add_aggregate(commands)
    register_abtest(commands)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _positive_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def _add_analyze(commands) -> None:
    p = commands.add_parser(
        "analyze", help="compare buckets from per-user rows or per-bucket sufficient statistics",
        description="Read bucket,user,impressions,clicks[,day][,pre_impressions,pre_clicks] rows or "
                    "bucket,n,sum_c,sum_m,sum_c2,sum_m2,sum_cm[,sum_c_pre,...,sum_m_c_pre] statistics; write "
                    "the comparisons as JSON (and optionally a report). With the pre-period columns each "
                    "comparison also carries the CUPED-adjusted lift, CI, p and variance reduction.")
    p.add_argument("--input", required=True, help="CSV with per-user rows or per-bucket sufficient statistics")
    p.add_argument("--control", help="control bucket (default: 'control' if present, else the first bucket)")
    p.add_argument("--split", help="configured traffic split for SRM: 'control=50,b=50' or '50,50' "
                                   "in file order (default: equal)")
    p.add_argument("--per-day", dest="per_day", help="cumulative per-day sufficient statistics "
                                                     "(bucket,day,n,…; from 'abtest aggregate')")
    p.add_argument("--alpha", type=_positive_fraction, default=0.05)
    p.add_argument("--ci-method", choices=("delta", "log", "fieller"), default="delta",
                   help="relative-lift CI (default: linear delta method)")
    p.add_argument("--sequential", action="store_true",
                   help="also report always-valid p-values and confidence sequences (peeking-safe)")
    p.add_argument("--practical-threshold", type=float, default=0.003,
                   help="relative lift that matters in practice (001: +0.3%%)")
    p.add_argument("--no-cuped", dest="cuped", action="store_false",
                   help="leave out the CUPED figures even when the input has pre-period columns")
    p.add_argument("--out", required=True, help="report JSON path")
    p.add_argument("--report-dir", help="also write report.md, self-contained report.html and plots here")
    p.add_argument("--title", default="A/B test report", help="title of the Markdown/HTML report")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from abtest import analyze
    from abtest.report_json import write_json

    report = analyze.analyze(args.input, control=args.control, split=args.split, per_day_path=args.per_day,
                             alpha=args.alpha, ci_method=args.ci_method, sequential=args.sequential,
                             practical_threshold=args.practical_threshold, cuped=args.cuped)
    out = write_json(report, args.out)
    print(f"wrote {out}")
    if args.report_dir:
        from abtest.report import write_report

        extra = {k: v for k, v in report.items() if k not in ("comparisons", "per_day")}
        paths = write_report(report["comparisons"], report["per_day"], out_dir=args.report_dir,
                             title=args.title, extra=extra)
        print(f"wrote {paths['markdown']} and {paths['html']}")
    from abtest.report import console_line

    width = max(len(str(c[k])) for c in report["comparisons"] for k in ("control", "treatment"))
    for c in report["comparisons"]:
        print(f"  {console_line(c, width)}  (naive p={_num(c['p_value_naive'])}, SRM p={_num(c['srm_p'])})")
    return 0


def _add_aa(commands) -> None:
    p = commands.add_parser(
        "aa", help="A/A calibration: false-positive rate of each test over simulated identical buckets",
        description="Simulate A/A experiments and report each test's false-positive rate with a binomial "
                    "CI and a p-value histogram / QQ plot. --traffic clustered (default): synthetic users "
                    "(Beta CTR per user, heavy-tailed impressions). --traffic world: the simulated "
                    "marketplace world's own traffic under one policy, its users re-split by a fresh salt "
                    "every run. The p-value is the report's (relative lift over its delta-method SE). "
                    "Exit status 1 when the delta-method (or, with --cuped, the CUPED) rate is outside "
                    "alpha +/- 1 point; below ~3,200 runs that band is wider than chance allows, and the "
                    "summary says so.")
    p.add_argument("--traffic", choices=("clustered", "world"), default="clustered")
    p.add_argument("--runs", type=int, default=10_000,
                   help="A/A runs (default 10000: the +/- 1 point band is then 4.6 binomial SDs wide)")
    p.add_argument("--cuped", action="store_true",
                   help="also give every user a pre-period and calibrate the CUPED test")
    p.add_argument("--pre-days", type=int, default=14,
                   help="--traffic world with --cuped: pre-period days per run (default 14)")
    p.add_argument("--seed", type=int, default=0,
                   help="A/A seed (and, with --traffic world, the world seed when --world-config is used "
                        "and the display-pool seed)")
    p.add_argument("--alpha", type=_positive_fraction, default=0.05)
    p.add_argument("--peeks", type=int, default=0,
                   help="also read each run this many times (clustered: as users arrive; world: at evenly "
                        "spaced day boundaries, at most --days) - fixed-horizon vs sequential")
    p.add_argument("--out-dir", "--out", dest="out_dir", default="aa_report",
                   help="writes aa.json, aa.md, aa_pvalues.png")
    clustered = p.add_argument_group("--traffic clustered")
    clustered.add_argument("--users", type=int, default=2000, help="users per bucket")
    clustered.add_argument("--ctr-beta", default="2,50", help="Beta(a,b) of per-user CTR, as 'a,b'")
    clustered.add_argument("--mean-impressions", type=float, default=20.0)
    clustered.add_argument("--impressions", choices=("geometric", "lognormal"), default="geometric")
    clustered.add_argument("--lognormal-sigma", type=float, default=1.0)
    world = p.add_argument_group("--traffic world")
    source = world.add_mutually_exclusive_group()
    source.add_argument("--logs", type=Path, help="a simulate-logs directory: use the world that wrote it")
    source.add_argument("--world-config", type=Path, help="world parameters (TOML; default: the default world)")
    world.add_argument("--displays", type=int, default=2_000_000, help="expected displays per A/A run")
    world.add_argument("--days", type=int, default=14, help="experiment length in days")
    world.add_argument("--slots", type=int, default=32, help="display contexts per user")
    world.add_argument("--policy", default="title_only",
                       choices=("title_only", "random_sps", "popular_sps", "personalised_sps"),
                       help="policy both buckets get (personalised_sps: the world's oracle scorer)")
    world.add_argument("--k", type=int, default=3, help="SPs added by a non-title-only policy")
    world.add_argument("--workers", type=int, default=None, help="threads drawing runs (default up to 2)")
    p.set_defaults(func=_run_aa)


def _run_aa(args) -> int:
    from abtest import aa
    from adpush_core.errors import UserError

    if args.traffic == "clustered" and (args.logs or args.world_config):
        raise UserError("abtest aa: --logs/--world-config need --traffic world")
    try:
        if args.traffic == "world":
            result = _world_aa(args)
        else:
            a, b = (float(x) for x in args.ctr_beta.split(","))
            traffic = aa.ClusteredTraffic(ctr_a=a, ctr_b=b, mean_impressions=args.mean_impressions,
                                          impressions=args.impressions, lognormal_sigma=args.lognormal_sigma)
            result = aa.run_aa(args.runs, args.users, traffic, seed=args.seed, alpha=args.alpha,
                               peeks=args.peeks, cuped=args.cuped)
    except ValueError as err:
        raise UserError(f"abtest aa: {err}") from err
    summary = aa.write_aa(result, args.out_dir)
    for name, t in summary["tests"].items():
        print(f"{name:>18}: false-positive rate {100 * t['false_positive_rate']:.2f}% "
              f"[{100 * t['ci_low']:.2f}%, {100 * t['ci_high']:.2f}%] at alpha {args.alpha}")
    within = summary["delta_within_band"] and summary.get("cuped_within_band", True)
    tested = "delta-method and CUPED rates" if "cuped_within_band" in summary else "delta-method rate"
    print(f"design effect {summary['mean_design_effect']:.2f} (naive rate it predicts "
          f"{100 * summary['naive_rate_predicted_by_design_effect']:.1f}%); {tested} "
          f"{'within' if within else 'OUTSIDE'} the band alpha +/- {100 * aa.CALIBRATION_TOLERANCE:.0f} point; "
          f"wrote {args.out_dir}/aa.md")
    if not summary["band_meaningful"]:
        print(f"warning: {args.runs} runs are too few for that band to mean much (a calibrated test leaves it "
              f"by chance > 1% of the time below {summary['runs_for_meaningful_band']:,} runs)")
    return 0 if within else 1


def _world_aa(args):
    import time

    import numpy as np

    from abtest.simulator.aa_world import WorldAATraffic, make_policy, run_aa_world
    from abtest.simulator.cli import world_from_args

    started = time.perf_counter()
    world = world_from_args(args.logs, args.world_config, args.seed)
    policy = make_policy(world, args.policy, args.k, rng=np.random.default_rng(args.seed))
    traffic = WorldAATraffic.from_world(world, policy, displays=args.displays, days=args.days,
                                        slots=args.slots, seed=args.seed)
    setup = time.perf_counter() - started
    result = run_aa_world(traffic, runs=args.runs, seed=args.seed, alpha=args.alpha, peeks=args.peeks,
                          workers=args.workers, pre_days=args.pre_days if args.cuped else 0)
    result.traffic["world"] = str(args.logs or args.world_config or "default WorldConfig")
    print(f"world traffic: {traffic.n_users} users, {args.policy}, {args.displays} displays over "
          f"{args.days} days per run; setup {setup:.1f}s, {args.runs} runs "
          f"{time.perf_counter() - started - setup:.1f}s")
    return result


#: Standard Beam/Dataflow options ``aggregate`` forwards (anything else: after ``--``).
BEAM_OPTIONS = ("runner", "direct_running_mode", "direct_num_workers", "project", "region", "temp_location",
                "staging_location", "setup_file", "requirements_file", "job_name", "num_workers",
                "max_num_workers", "machine_type", "sdk_location", "dry_run", "no_auth")


def _add_aggregate(commands) -> None:
    p = commands.add_parser(
        "aggregate", help="Beam job: impression logs -> per-bucket sufficient statistics (overall, per day)",
        description="Read CSV logs user,bucket,day,impressions,clicks and write bucket,n,sum_c,sum_m,sum_c2,"
                    "sum_m2,sum_cm to --out, plus OUT.daily.csv, OUT.cumulative.csv and OUT.rejected.jsonl. "
                    "With --pre-input (user,day,impressions,clicks before the experiment) every output also "
                    "holds the CUPED pre-period sums. "
                    "Runs on FnApiRunner unless --runner is given. Passed to Beam: --runner, "
                    "--direct_running_mode, --direct_num_workers, --project, --region, --temp_location, "
                    "--staging_location, --setup_file, --requirements_file, --job_name, --num_workers, "
                    "--max_num_workers, --machine_type, --sdk_location, --dry_run, --no_auth; any other "
                    "Beam option after '--'.")
    p.add_argument("--input", required=True, help="CSV file or glob (local or gs://)")
    p.add_argument("--out", required=True, help="overall sufficient-statistics CSV")
    p.add_argument("--pre-input", dest="pre_input",
                   help="pre-experiment logs of the same users, CSV user,day,impressions,clicks (file or "
                        "glob): adds the nine CUPED sums sum_c_pre,...,sum_m_c_pre to every output")
    for name in BEAM_OPTIONS:
        p.add_argument(f"--{name}", dest=f"beam_{name}", metavar=name.upper(), help=argparse.SUPPRESS)
    p.add_argument("beam_args", nargs=argparse.REMAINDER, help="more Beam pipeline options after '--'")
    p.set_defaults(func=_run_aggregate)


def _run_aggregate(args) -> int:
    from apache_beam.metrics import MetricsFilter

    from abtest import aggregate as job

    beam_args = [f"--{name}={getattr(args, 'beam_' + name)}" for name in BEAM_OPTIONS
                 if getattr(args, "beam_" + name) is not None]
    beam_args += [a for a in args.beam_args if a != "--"]
    pre = ["--pre-input", args.pre_input] if args.pre_input else []
    result = job.run(["--input", args.input, "--out", args.out] + pre + beam_args)
    paths = job.output_paths(args.out)
    try:
        counters = {r.key.metric.name: r.committed for r in result.metrics().query(MetricsFilter())["counters"]}
    except Exception:  # some runners (dry runs) report no metrics
        counters = {}
    rejected = sum(v for k, v in counters.items() if k.startswith("rows_rejected_"))
    if counters:
        print(f"read {counters.get('rows_read', 0)} row(s), {counters.get('users', 0)} user(s); "
              f"{rejected} row(s) rejected (see {paths['rejected']})")
        if args.pre_input:
            pre_rejected = sum(v for k, v in counters.items() if k.startswith("pre_rows_rejected_"))
            print(f"pre-period: read {counters.get('pre_rows_read', 0)} row(s); "
                  f"{counters.get('pre_users', 0)} experiment user(s) have pre-period traffic, "
                  f"{counters.get('pre_users_not_in_experiment', 0)} pre-period user(s) never entered the "
                  f"experiment (dropped); {pre_rejected} row(s) rejected")
        if counters.get("users_in_several_buckets"):
            print(f"warning: {counters['users_in_several_buckets']} user(s) appear in more than one bucket "
                  f"(listed in {paths['rejected']}); check the assignment")
    print("wrote " + ", ".join(paths[k] for k in ("overall", "daily", "cumulative")))
    return 0


def _num(value) -> str:
    from abtest.report import P_FLOOR

    if value is None:
        return "n/a"
    return f"< {P_FLOOR:.0e}" if value < P_FLOOR else f"{value:.3g}"
