"""Scenario files: a list of experiments in TOML, run on one world, reported together.

``[defaults]`` sets days, split, slots, alpha, the practical threshold and the pre-period length
(``pre_days``, the CUPED covariates; 0 = none); each ``[[experiment]]`` names its buckets'
policies (see ``abtest/scenarios/001_table2.toml``).
The personalised policy's scorer is chosen at run time (served model, SavedModel, or the oracle).
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from abtest.simulator.policies import Policy, keyword_click_counts
from abtest.simulator.traffic import DisplayPool, Experiment, ExperimentResult, simulate_experiment
from abtest.stats.comparison import DegenerateComparison, compare_all
from abtest.stats.sufficient import ALL_FIELD_NAMES, FIELD_NAMES
from adpush_core.errors import UserError

DEFAULTS = {"days": 14, "split": [0.5, 0.5], "slots": 32, "alpha": 0.05,
            "practical_threshold": 0.003, "displays": 30_000_000, "pre_days": 0}
EXPERIMENT_KEYS = {"name", "displays", "days", "split", "control", "treatment", "salt", "pre_days"}
BUCKET_KEYS = {"label", "policy", "k", "highlight"}
BUILTIN = Path(__file__).resolve().parents[1] / "scenarios"


@dataclass
class Scenario:
    path: Path
    defaults: dict[str, Any]
    experiments: list[dict[str, Any]] = field(default_factory=list)


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A file path, or the name of a built-in scenario (``001`` → 001_table2.toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    matches = sorted(BUILTIN.glob(f"{name_or_path}*.toml"))
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.stem for p in sorted(BUILTIN.glob("*.toml")))
    raise UserError(f"scenario {name_or_path!r} is neither a file nor a built-in scenario "
                    f"({known})")


def load_scenario(name_or_path: str | Path) -> Scenario:
    path = resolve_scenario_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}") from err
    unknown = set(data) - {"defaults", "experiment"}
    if unknown:
        raise UserError(f"{path}: unknown table(s) {sorted(unknown)}; use [defaults] and "
                        f"[[experiment]]")
    defaults = dict(DEFAULTS)
    for key, value in data.get("defaults", {}).items():
        if key not in DEFAULTS:
            raise UserError(f"{path}: [defaults] has unknown key {key!r}; known: {sorted(DEFAULTS)}")
        defaults[key] = value
    experiments = data.get("experiment", [])
    if not experiments:
        raise UserError(f"{path}: no [[experiment]] entries")
    seen = set()
    for index, exp in enumerate(experiments, start=1):
        where = f"{path}: experiment {index} ({exp.get('name', '?')})"
        unknown = set(exp) - EXPERIMENT_KEYS
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}")
        for role in ("name", "control", "treatment"):
            if role not in exp:
                raise UserError(f"{where}: missing '{role}'")
        if exp["name"] in seen:
            raise UserError(f"{where}: duplicate experiment name")
        seen.add(exp["name"])
        for role in ("control", "treatment"):
            bucket = exp[role]
            bad = set(bucket) - BUCKET_KEYS
            if bad or "policy" not in bucket:
                raise UserError(f"{where}: {role} needs 'policy' (and optional label, k, "
                                f"highlight); unknown: {sorted(bad)}")
            if bucket["policy"] not in Policy.KINDS:
                raise UserError(f"{where}: {role} policy {bucket['policy']!r} is not one of "
                                f"{', '.join(Policy.KINDS)}")
    return Scenario(path, defaults, experiments)


def build_experiment(spec: dict, defaults: dict, scorer, keyword_clicks) -> Experiment:
    def policy(bucket: dict) -> Policy:
        kind = bucket["policy"]
        return Policy(kind=kind, k=int(bucket.get("k", 0)), highlight=bool(bucket.get("highlight")),
                      scorer=scorer if kind == "personalised_sps" else None,
                      keyword_clicks=keyword_clicks if kind == "popular_sps" else None)

    name = spec["name"]
    try:
        return Experiment(
            name=name, control=policy(spec["control"]), treatment=policy(spec["treatment"]),
            control_name=f"{name} {spec['control'].get('label', spec['control']['policy'])}",
            treatment_name=f"{name} {spec['treatment'].get('label', spec['treatment']['policy'])}",
            displays=int(spec.get("displays", defaults["displays"])),
            days=int(spec.get("days", defaults["days"])),
            split=tuple(spec.get("split", defaults["split"])),
            salt=spec.get("salt", f"adpush-{name}"),
        )
    except ValueError as err:
        raise UserError(f"experiment {name}: {err}") from err


def run_scenario(world, scenario: Scenario, scorer, seed: int, out_dir: str | Path,
                 title: str | None = None, progress: bool = True) -> dict:
    """Run every experiment; write the report (MD/HTML/JSON + plots) and per-bucket statistics.

    Experiments with ``pre_days > 0`` also simulate a pre-period (its own random stream), and
    their report rows carry the CUPED-adjusted lift beside the unadjusted one.
    """
    from tqdm.auto import tqdm

    from abtest.report import write_report
    from abtest.stats.comparison import compare

    out = Path(out_dir)
    (out / "stats").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pre_rng = np.random.default_rng(np.random.SeedSequence([seed, 7, 0xC0DE]))
    pool = DisplayPool.sample(world, int(scenario.defaults["slots"]), rng)
    keyword_clicks = keyword_click_counts(world, rng)
    alpha = float(scenario.defaults["alpha"])
    threshold = float(scenario.defaults["practical_threshold"])

    comparisons, per_day, results = [], [], []
    bar = tqdm(scenario.experiments, desc="experiments", unit="exp", disable=not progress)
    for spec in bar:
        experiment = build_experiment(spec, scenario.defaults, scorer, keyword_clicks)
        bar.set_postfix_str(experiment.name)
        pre_days = int(spec.get("pre_days", scenario.defaults["pre_days"]))
        if pre_days < 0:
            raise UserError(f"experiment {experiment.name}: pre_days must be >= 0, got {pre_days}")
        result = simulate_experiment(world, pool, experiment, rng, pre_days=pre_days, pre_rng=pre_rng)
        results.append(result)
        weights = dict(zip(result.names, experiment.split))
        try:
            comparisons.extend(compare_all(result.stats(), experiment.control_name, weights=weights,
                                           alpha=alpha, practical_threshold=threshold))
        except DegenerateComparison as err:
            raise UserError(f"experiment {experiment.name}: {err}") from err
        for day in range(experiment.days):
            stats = result.stats(through_day=day)
            try:
                per_day.append(compare(experiment.control_name, stats[experiment.control_name],
                                       experiment.treatment_name, stats[experiment.treatment_name],
                                       split=experiment.split, alpha=alpha,
                                       practical_threshold=threshold, day=day))
            except DegenerateComparison:
                continue  # too few users or clicks yet on this day: no point on the curve
        _write_stats(out / "stats", result)

    # Holm / BH across the comparisons of this report
    from abtest.stats.comparison import with_adjusted_p_values

    comparisons = with_adjusted_p_values(comparisons)
    paths = write_report(
        comparisons, per_day, out_dir=out,
        title=title or f"A/B report: {scenario.path.stem}",
        extra={"scenario": str(scenario.path), "seed": seed, "scorer": scorer.name,
               "displays": {r.experiment.name: r.displays for r in results},
               "pre_days": {r.experiment.name: r.pre_days for r in results}},
    )
    return {"comparisons": comparisons, "per_day": per_day, "paths": paths, "results": results}


def _write_stats(directory: Path, result: ExperimentResult) -> None:
    """Per-bucket sufficient statistics, overall and per day (analysable by `abtest analyze`;
    with the pre-period columns when the experiment has a pre-period)."""
    name = result.experiment.name.replace(" ", "_").replace("/", "_")
    names = ALL_FIELD_NAMES if result.pre_impressions is not None else FIELD_NAMES
    with open(directory / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("bucket", *names))
        for bucket, stats in result.stats().items():
            writer.writerow((bucket, *(stats.to_dict()[f] for f in names)))
    with open(directory / f"{name}_daily.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("day", "bucket", *names))
        for day, per_bucket in enumerate(result.daily_stats()):
            for bucket, stats in per_bucket.items():
                writer.writerow((day, bucket, *(stats.to_dict()[f] for f in names)))
