"""SF ceilings of a world straight from its simulate-logs output, before (or without) build-data.

Splits the log days as ``adpush build-data`` does by default (``beam_pipelines.split_by_day``
over the world's ``days``), then prints the share of test SF rows in each 001 Table 3 segment
and the test (and valid) AUC of ``popularity`` / ``query`` / ``profile`` / ``oracle`` and, on
test, ``posterior_sf`` / ``posterior_sf_ad`` (θ_u MAP from the user's own SF / SF + ad train
clicks with the world's true parameters) — overall and per 001 Table 3 segment.

    .venv/bin/python bench/sp_ceilings_logs.py --logs /tmp/dw/logs --out /tmp/dw_ceilings.json
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
    parser.add_argument("--logs", required=True)
    parser.add_argument("--steps", type=int, default=200, help="MAP optimisation steps")
    parser.add_argument("--no-ad", action="store_true",
                        help="skip posterior_sf_ad (θ_u MAP from own SF + ad train clicks)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import pandas as pd  # noqa: PLC0415

    import tfrs_models  # noqa: F401, PLC0415
    from beam_pipelines.config import BuildConfig  # noqa: PLC0415
    from beam_pipelines.split_by_day import day_splits  # noqa: PLC0415
    from tfrs_models import metrics  # noqa: PLC0415
    from abtest.world import sf_ceilings as ceilings  # noqa: PLC0415
    from abtest.world.logs import read_world  # noqa: PLC0415

    start = time.time()
    logs = args.logs
    world = read_world(logs)
    log_split = dict(enumerate(day_splits(world.config.days, BuildConfig())))
    sf = pd.read_csv(f"{logs}/sf_impressions.csv",
                     usecols=["impression_id", "user_id", "day", "clicked"])
    sf["split"] = sf["day"].map(log_split)
    ad = pd.read_csv(f"{logs}/ad_impressions.csv",
                     usecols=["impression_id", "user_id", "day", "clicked"])
    ad = ad[ad["day"].map(log_split) == "train"]
    train = sf[sf.split == "train"]
    main_clicks = train.groupby("user_id")["clicked"].sum().to_dict()
    aux_clicks = ad.groupby("user_id")["clicked"].sum().to_dict()
    out = {"train": {"sf_rows": int(len(train)), "ad_rows": int(len(ad)),
                     "users_with_sf_rows": int(train.user_id.nunique()),
                     "sf_clicks_per_user": float(train.clicked.sum() / world.n_users),
                     "ad_clicks_per_user": float(ad.clicked.sum() / world.n_users)}}
    for split in ("valid", "test"):
        rows = sf[sf.split == split]
        y = rows["clicked"].to_numpy()
        users, queries, keywords = ceilings.read_sf_impressions(
            logs, world, rows["impression_id"].to_numpy())
        scores = ceilings.sf_ceiling_scores(world, users, queries, keywords)
        if split == "test":
            sf_rows = ceilings.read_log_rows(logs, world, "sf", train["impression_id"].to_numpy())
            theta = ceilings.posterior_latent(world, sf_rows, steps=args.steps)
            scores["posterior_sf"] = ceilings.posterior_scores(world, theta, users, queries,
                                                               keywords)
            if not args.no_ad:
                ad_rows = ceilings.read_log_rows(logs, world, "ad", ad["impression_id"].to_numpy())
                theta = ceilings.posterior_latent(world, sf_rows, ad_rows, steps=args.steps)
                scores["posterior_sf_ad"] = ceilings.posterior_scores(world, theta, users,
                                                                      queries, keywords)
        segment = metrics.table3_segments(users, main_clicks, aux_clicks)
        result = {"n": int(y.size), "overall": {n: metrics.auc(y, s) for n, s in scores.items()},
                  "segments": {}}
        for name in sorted(set(segment)):
            i = segment == name
            result["segments"][name] = {
                "n_rows": int(i.sum()), "share_of_rows": round(float(i.mean()), 4),
                "n_users": int(np.unique(users[i]).size),
                **{n: metrics.auc(y[i], s[i]) for n, s in scores.items()}}
        out[split] = result
    out["seconds"] = round(time.time() - start, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
