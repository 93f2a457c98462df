"""001's A/B experiments with restricted-oracle scorers: how much of the oracle's lift a scorer
that knows only part of what the world knows can reach, on the same world, pool and draws as
`make demo`'s A/B (its `[abtest]` settings).

Scorers rank an ad's true attributes by the world's appeal with the user's latent ``θ_u``
replaced by an estimate (``abtest/world/sf_ceilings.py``):

- ``profile``: ``E[θ_u | profile]`` — what profile, query and keyword alone can give;
- ``posterior_sf``: the MAP of ``θ_u`` from the profile prior and the user's SF train rows;
- ``posterior_sf_ad``: the same from the SF and ad-click train rows (what the model's data holds);
- ``oracle``: the true ``θ_u`` (the demo's oracle scorer).

    .venv/bin/python bench/sp_ab_ceilings.py --run runs/RUN [--seed 0]
    .venv/bin/python bench/sp_ab_ceilings.py --run runs/RUN --expected [--slots 64] [--blank user_id]
        [--model CURVE/f0.5_s0/run/export/saved_model ...]

Prints each experiment's CUPED-adjusted lift per scorer and its share of the oracle's lift
(the figure `make demo` prints as "served/oracle"), and writes ``RUN/ab_ceilings.json``.

``--expected`` adds the run's exported model as a scorer and prints, instead of one sampled
A/B, each experiment's *expected* lift: the activity-weighted click probability of every user's
display contexts under the treatment over that under the control, everyone in each arm (the
quantity the A/B estimates, without the bucket split and Poisson draws). A sampled A/B
resolves a lift to about ±0.35 points (CUPED) at 001's sizes and ±1.2 at 2M displays; this
resolves a scorer's share of the oracle's lift to the pool's sampling alone, so a model's
quality is read apart from one draw's noise. Writes ``RUN/ab_expected.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class ThetaScorer:
    """The world's appeal with ``θ`` replaced by an estimate ``theta`` (U, r)."""

    def __init__(self, world, name: str, theta: np.ndarray):
        self.world, self.name, self.theta = world, name, theta

    def score(self, users, queries, ads, candidates):
        world, cfg = self.world, self.world.config
        pad = candidates < 0
        keywords = np.where(pad, 0, candidates)
        value = (cfg.pref_scale * np.einsum("nr,nar->na", self.theta[users],
                                            world.keyword_embedding[keywords])
                 + world.keyword_popularity[keywords])
        value = value + cfg.facet_boost * world.facet_match(queries[:, None], keywords)
        return np.where(pad, np.nan, value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="an `adpush run` directory")
    parser.add_argument("--seed", type=int, default=None, help="default: the run's seed")
    parser.add_argument("--steps", type=int, default=300, help="MAP optimisation steps")
    parser.add_argument("--expected", action="store_true",
                        help="expected lifts (no bucket split, no draws), the run's model included")
    parser.add_argument("--slots", type=int, default=64,
                        help="display contexts per user for --expected (default 64)")
    parser.add_argument("--model", action="append", default=[], metavar="SAVED_MODEL",
                        help="with --expected, score this SavedModel (e.g. a learning-curve point's "
                             "RUN/export/saved_model) instead of the run's served version; repeatable")
    parser.add_argument("--blank", action="append", default=[], metavar="INPUTS",
                        help="with --expected, also the model with these comma-separated inputs "
                             "sent empty (e.g. user_id, or history_sf_keywords,history_ad_title_tokens); "
                             "repeatable: which inputs carry the personalisation")
    args = parser.parse_args(argv)
    if (args.model or args.blank) and not args.expected:
        parser.error("--model and --blank go with --expected")
    missing = [m for m in args.model if not (Path(m) / "saved_model.pb").is_file()]
    if missing:
        parser.error(f"--model: no SavedModel (saved_model.pb) in {', '.join(missing)}")
    served = args.run / "models" / "selling_points"
    versions = [p.parent for p in served.glob("*/saved_model.pb") if p.parent.name.isdigit()]
    if args.expected and not args.model and not versions:
        parser.error(f"--expected: {served} has no exported version; run the export stage or pass --model")

    import tfrs_models  # noqa: F401, PLC0415 - selects Keras 2
    from abtest.simulator.cli import world_from_args  # noqa: PLC0415
    from abtest.simulator.scenario import load_scenario, run_scenario  # noqa: PLC0415
    from adpush.config import load_config  # noqa: PLC0415
    from adpush.stages import abtest_scenario  # noqa: PLC0415
    from tfrs_models.input import load_spec, read_columns  # noqa: PLC0415
    from abtest.world import sf_ceilings as ceilings  # noqa: PLC0415

    run = args.run
    config = load_config(run / "config.toml" if (run / "config.toml").exists() else None)
    seed = args.seed if args.seed is not None else int(config.get("run", {}).get("seed", 0))
    ab = config["abtest"]
    world = world_from_args(run / "logs", None, seed)
    spec = load_spec(run / "data")
    train = {kind: read_columns(spec, task, "train", ["impression_id"])["impression_id"]
             for kind, task in (("sf", "sf"), ("ad", "ad_click"))}
    rows = {kind: ceilings.read_log_rows(run / "logs", world, kind, ids)
            for kind, ids in train.items()}
    fitted, _ = world.profile_latent_fit
    scorers = [
        ThetaScorer(world, "profile", fitted),
        ThetaScorer(world, "posterior_sf",
                    ceilings.posterior_latent(world, rows["sf"], steps=args.steps)),
        ThetaScorer(world, "posterior_sf_ad",
                    ceilings.posterior_latent(world, rows["sf"], rows["ad"], steps=args.steps)),
        ThetaScorer(world, "oracle", np.asarray(world.user_latent)),
    ]
    if args.expected:
        from abtest.simulator.scorers import make_scorer  # noqa: PLC0415

        paths = args.model or [max(versions, key=lambda p: int(p.name))]
        models = []
        for path in paths:
            model = make_scorer(f"saved_model:{path}", world, run / "logs")
            model.name = "model" if not args.model else f"model {path}"
            models.append(model)
        blanked = [BlankedInputs(models[0], names.split(",")) for names in args.blank]
        lifts = expected_lifts(world, load_scenario(ab["scenario"]), [*models, *blanked, *scorers], seed,
                               args.slots)
        print_table(lifts, "expected lift")
        (run / "ab_expected.json").write_text(json.dumps({"seed": seed, "slots": args.slots, "lifts": lifts},
                                                         indent=1))
        return 0
    lifts = {}
    for scorer in scorers:
        scenario = abtest_scenario(ab)
        outcome = run_scenario(world, scenario, scorer, seed, run / "ab_ceilings" / scorer.name,
                               progress=False)
        lifts[scorer.name] = {c.treatment.split(" ")[0]: {
            "lift_cuped": c.relative_lift_cuped, "p_cuped": c.p_value_cuped,
            "lift": c.relative_lift, "p": c.p_value} for c in outcome["comparisons"]}
    print_table({scorer: {n: v["lift_cuped"] for n, v in by_name.items()} for scorer, by_name in lifts.items()},
                "CUPED lift")
    (run / "ab_ceilings.json").write_text(json.dumps({"seed": seed, "lifts": lifts}, indent=1))
    return 0


class BlankedInputs:
    """A model scorer whose ``inputs`` are sent empty (the serving signature's "no value")."""

    def __init__(self, scorer, inputs: list[str]):
        self.scorer, self.inputs = scorer, [name.strip() for name in inputs if name.strip()]
        self.name = "model without " + ", ".join(self.inputs)

    def score(self, users, queries, ads, candidates):
        features = self.scorer.features

        def blanked(*args):
            values = features(*args)
            unknown = [name for name in self.inputs if name not in values]
            if unknown:
                raise SystemExit(f"--blank: {', '.join(unknown)} not among the model's inputs "
                                 f"({', '.join(sorted(values))})")
            return {**values, **{name: np.full(len(args[0]), "", dtype=object) for name in self.inputs}}

        self.scorer.features = blanked
        try:
            return self.scorer.score(users, queries, ads, candidates)
        finally:
            del self.scorer.features  # the class's method again


def print_table(lifts: dict, what: str) -> None:
    """``lifts``: {scorer: {experiment: lift}}; each cell with its share of the oracle's lift."""
    names = list(lifts["oracle"])
    print("| scorer | " + " | ".join(f"{n} {what} (share of oracle)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for scorer, by_name in lifts.items():
        cells = []
        for n in names:
            lift, oracle = by_name[n], lifts["oracle"][n]
            share = f"{lift / oracle:.0%}" if abs(oracle) > 1e-3 else "–"
            cells.append(f"{lift:+.2%} ({share})")
        print(f"| {scorer} | " + " | ".join(cells) + " |")


def expected_lifts(world, scenario, scorers, seed: int, slots: int) -> dict:
    """{scorer: {experiment: expected relative lift}} on one pool of ``slots`` contexts a user.

    Each arm's click rate is Σ_u a_u Σ_s p_us / Σ_u a_u · slots with every user under that arm
    (a_u the user's activity, as ``traffic.user_day_rates`` allots displays).
    """
    from abtest.simulator.policies import keyword_click_counts  # noqa: PLC0415
    from abtest.simulator.scenario import build_experiment  # noqa: PLC0415
    from abtest.simulator.traffic import DisplayPool, click_probability  # noqa: PLC0415

    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pool = DisplayPool.sample(world, slots, rng)
    keyword_clicks = keyword_click_counts(world, rng)
    users = np.arange(world.n_users)
    weight = np.asarray(world.user_activity, dtype=np.float64)
    out = {}
    for scorer in scorers:
        rates = {}
        out[scorer.name] = {}
        for spec in scenario.experiments:
            experiment = build_experiment(spec, scenario.defaults, scorer, keyword_clicks)
            arms = []
            for policy in (experiment.control, experiment.treatment):
                key = (policy.kind, policy.k, policy.highlight)
                if key not in rates:
                    p = click_probability(world, pool, policy, users, rng).reshape(world.n_users, slots)
                    rates[key] = float(weight @ p.mean(axis=1) / weight.sum())
                arms.append(rates[key])
            out[scorer.name][experiment.name] = arms[1] / arms[0] - 1.0
    return out


if __name__ == "__main__":
    raise SystemExit(main())
