"""Test AUC of the SF task's ceilings per 001 Table 3 segment, including what the users' own
train-split clicks reveal about their private latent (abtest/world/sf_ceilings.py):

- ``popularity`` / ``query`` / ``profile``: restricted oracles (``World.sf_ceilings``);
- ``posterior_sf``: ``θ_u`` replaced by its MAP given the profile prior and the user's SF train
  clicks, with the world's true parameters (the best any model could learn per user from them);
- ``posterior_sf_ad``: the same given SF and ad-click train rows (what multi-task could add);
- ``oracle``: the true probability.

    .venv/bin/python bench/sp_ceilings.py --data /tmp/dw/data --logs /tmp/dw/logs [--out F.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--split", default="test", help="scored split (valid or test)")
    parser.add_argument("--steps", type=int, default=300, help="MAP optimisation steps")
    parser.add_argument("--no-ad", action="store_true", help="skip the SF+ad posterior")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import tfrs_models  # noqa: F401, PLC0415
    from tfrs_models import metrics  # noqa: PLC0415
    from tfrs_models.input import load_spec, read_columns  # noqa: PLC0415
    from abtest.world import sf_ceilings as ceilings  # noqa: PLC0415
    from abtest.world.logs import read_world  # noqa: PLC0415

    start = time.time()
    spec = load_spec(args.data)
    world = read_world(args.logs)
    test = read_columns(spec, "sf", args.split, ["impression_id", "clicked", "user_id"])
    train_sf = read_columns(spec, "sf", "train", ["user_id", "clicked", "impression_id"])
    train_ad = read_columns(spec, "ad_click", "train", ["user_id", "clicked", "impression_id"])
    users, queries, keywords = ceilings.read_sf_impressions(args.logs, world,
                                                           test["impression_id"])
    scores = ceilings.sf_ceiling_scores(world, users, queries, keywords)
    sf_rows = ceilings.read_log_rows(args.logs, world, "sf", train_sf["impression_id"])
    theta = ceilings.posterior_latent(world, sf_rows, steps=args.steps)
    scores["posterior_sf"] = ceilings.posterior_scores(world, theta, users, queries, keywords)
    if not args.no_ad:
        ad_rows = ceilings.read_log_rows(args.logs, world, "ad", train_ad["impression_id"])
        theta = ceilings.posterior_latent(world, sf_rows, ad_rows, steps=args.steps)
        scores["posterior_sf_ad"] = ceilings.posterior_scores(world, theta, users, queries,
                                                              keywords)
    segments = metrics.table3_segments(
        test["user_id"], metrics.clicks_per_user(train_sf["user_id"], train_sf["clicked"]),
        metrics.clicks_per_user(train_ad["user_id"], train_ad["clicked"]))
    labels = test["clicked"]
    result = {"split": args.split, "train_rows": {"sf": int(sf_rows["users"].size),
                                                   "ad_click": int(train_ad["user_id"].size)},
              "n": int(labels.size),
              "seconds": None, "overall": {}, "segments": {}}
    for name, s in scores.items():
        result["overall"][name] = metrics.auc(labels, s)
    for segment in sorted(set(segments)):
        idx = segments == segment
        result["segments"][segment] = {"n": int(idx.sum()),
                                       **{name: metrics.auc(labels[idx], s[idx])
                                          for name, s in scores.items()}}
    result["seconds"] = round(time.time() - start, 1)
    names = list(scores)
    print("| segment | n | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 2))
    for segment, block in [("overall", {"n": result["n"], **result["overall"]})] + sorted(
            result["segments"].items()):
        print(f"| {segment} | {block['n']} | "
              + " | ".join(f"{block[n]:.4f}" for n in names) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
