"""``adpush simulate-logs``: raw logs of the world in the formats the Beam sources read.

Layout and columns are fixed by docs/contracts.md §1. True probabilities go under ``oracle/``,
keyed so evaluation can join them; ``manifest.json`` records parameters, seed, row counts and
file hashes. Same config and seed → byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from abtest.world.behaviour import (BEHAVIOUR_ORACLE_COLUMNS, BEHAVIOURS, behaviour_ceilings,
                                    simulate_behaviour)
from abtest.world.config import WorldConfig
from abtest.world.world import PAD, SF_CEILINGS, World
from adpush_core.errors import UserError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
LOG_FILES = (
    "users.csv", "ads.csv", "selling_points.csv", "sf_impressions.csv", "ad_impressions.csv",
    "behaviour.csv", "oracle/sf_impressions.csv", "oracle/ad_impressions.csv",
    "oracle/behaviour.csv",
)
# oracle/sf_impressions.csv: the true probability, then the restricted oracles (World.sf_ceilings).
SF_ORACLE_COLUMNS = ("impression_id", "p_click", *(f"ceiling_{name}" for name in SF_CEILINGS))
_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none")


class OutputDirError(ValueError):
    """The output directory holds something that is not this run."""


@dataclass
class SearchDay:
    """One day of search traffic: SF-bar impressions and ad impressions, sorted by ts."""

    sf: dict[str, np.ndarray]
    ads: dict[str, np.ndarray]


def simulate_search_day(world: World, day: int, rng: np.random.Generator) -> SearchDay:
    """Sessions of every user on one day → SF and ad impressions with clicks and true p."""
    cfg = world.config
    sessions = rng.poisson(world.user_activity)
    users = np.repeat(np.arange(world.n_users), sessions)
    day_start = cfg.window_start + day * 86_400
    ts = day_start + rng.integers(0, 86_400, size=users.size)
    queries = world.sample_queries(users, rng)

    # Ads: every session shows ads_per_session slots.
    ads, positions = world.sample_ads(queries, cfg.ads_per_session, rng)
    ad_users = np.repeat(users, cfg.ads_per_session)
    ad_queries = np.repeat(queries, cfg.ads_per_session)
    ad_ts = np.repeat(ts, cfg.ads_per_session) + np.tile(np.arange(cfg.ads_per_session),
                                                         users.size)
    ad_ts = np.minimum(ad_ts, day_start + 86_399)  # a session's last slots stay in its day
    p_ad = world.p_ad_click(ad_users, ad_queries, ads.ravel(), positions.ravel())
    ad_clicked = rng.random(p_ad.size) < p_ad

    # SF bars: sf_exposure_scale · e_u expected per session, floor(x) + Bernoulli(frac(x))
    # (with scale 1 this is one bar shown with probability e_u, drawing the same numbers).
    expected = cfg.sf_exposure_scale * world.user_sf_exposure[users]
    whole = np.floor(expected)
    n_bars = whole.astype(np.int64) + (rng.random(users.size) < expected - whole)
    session = np.repeat(np.arange(users.size), n_bars)
    bar = world.sample_sf_bar(queries[session], rng)
    k = bar.shape[1]
    sf_users = np.repeat(users[session], k)
    sf_queries = np.repeat(queries[session], k)
    sf_ts = np.repeat(ts[session], k)
    sf_keywords = bar.ravel()
    real = sf_keywords != PAD
    sf_users, sf_queries, sf_ts, sf_keywords = (x[real] for x in (sf_users, sf_queries, sf_ts,
                                                                   sf_keywords))
    p_sf = world.p_sf_click(sf_users, sf_queries, sf_keywords)
    sf_clicked = rng.random(p_sf.size) < p_sf

    sf_order = np.lexsort((sf_keywords, sf_users, sf_ts))
    ad_order = np.lexsort((positions.ravel(), ad_users, ad_ts))
    return SearchDay(
        sf={"user_id": sf_users[sf_order], "query": sf_queries[sf_order],
            "sf_keyword": sf_keywords[sf_order], "ts": sf_ts[sf_order],
            "clicked": sf_clicked[sf_order], "p_click": p_sf[sf_order]},
        ads={"user_id": ad_users[ad_order], "query": ad_queries[ad_order],
             "ad_id": ads.ravel()[ad_order], "position": positions.ravel()[ad_order],
             "ts": ad_ts[ad_order], "clicked": ad_clicked[ad_order], "p_click": p_ad[ad_order]},
    )


class _CsvTable:
    """A CSV file written in chunks through Arrow, header written by us (Arrow quotes it)."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = columns
        self.file = open(path, "wb")
        self.file.write((",".join(columns) + "\n").encode())
        self.rows = 0

    def write(self, data: dict[str, pa.Array | np.ndarray]) -> None:
        table = pa.table({name: data[name] for name in self.columns})
        pacsv.write_csv(table, self.file, _CSV_OPTIONS)
        self.rows += table.num_rows

    def close(self) -> None:
        self.file.close()


def _dictionary(indices: np.ndarray, names: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(names))


def _probability(p: np.ndarray) -> np.ndarray:
    return np.round(p, 8)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_parameters(config: WorldConfig, seed: int) -> dict:
    return {"format_version": FORMAT_VERSION, "seed": seed, "world": config.to_dict()}


def read_world(logs_dir: str | Path) -> World:
    """The ``World`` that wrote ``logs_dir`` (config and seed from its ``manifest.json``)."""
    path = Path(logs_dir) / MANIFEST
    if not path.is_file():
        raise UserError(f"{logs_dir} holds no {MANIFEST}: not a simulate-logs directory")
    params = json.loads(path.read_text())["parameters"]
    return World.build(WorldConfig.from_manifest(params["world"], where=str(path)),
                       int(params["seed"]))


def check_output_dir(out: Path, config: WorldConfig, seed: int) -> bool:
    """True if ``out`` already holds this exact run, intact; False if it is empty or absent.

    Raises OutputDirError if it holds anything else (another run, or foreign files).
    """
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a directory")
    entries = [p for p in out.iterdir()]
    if not entries:
        return False
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise OutputDirError(
            f"output dir {out} is not empty and holds no {MANIFEST}: refusing to write a world "
            f"run over files it did not make; choose an empty or new directory")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("parameters") != _run_parameters(config, seed):
        old = manifest.get("parameters", {})
        changed = sorted(k for k in set(old.get("world", {})) | set(config.to_dict())
                         if old.get("world", {}).get(k) != config.to_dict().get(k))
        if old.get("seed") != seed:
            changed.insert(0, "seed")
        raise OutputDirError(
            f"output dir {out} holds a different world run (differs in: {', '.join(changed)}); "
            f"choose another --out or delete it")
    for name, expected in manifest["files"].items():
        path = out / name
        if not path.is_file() or _sha256(path) != expected["sha256"]:
            raise OutputDirError(f"output dir {out} holds this run but {name} is missing or "
                                 f"changed; delete the directory and run again")
    return True


def simulate_logs(out: str | Path, config: WorldConfig, seed: int = 0,
                  progress: bool = True) -> dict:
    """Write the world's raw logs to ``out``; return the manifest.

    The files are written into a temporary sibling directory and moved into place at the end,
    so an interrupted run never leaves a half-written log set that looks complete.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    config = config.validate()
    if check_output_dir(out, config, seed):
        return json.loads((out / MANIFEST).read_text())

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        manifest = _write_all(staging, config, seed, tqdm, progress)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_all(out: Path, config: WorldConfig, seed: int, tqdm, progress: bool) -> dict:
    stages = tqdm(total=config.days + 2, desc="simulate-logs", unit="stage", disable=not progress)
    world = World.build(config, seed)
    day_rngs = [np.random.default_rng(s) for s in
                np.random.SeedSequence([seed, 1]).spawn(config.days)]
    behaviour_rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))

    users = _CsvTable(out / "users.csv", ("user_id", "age_bucket", "gender", "city_tier",
                                          "activity_level"))
    users.write({"user_id": np.arange(world.n_users), "age_bucket": world.user_profile[:, 0],
                 "gender": world.user_profile[:, 1], "city_tier": world.user_profile[:, 2],
                 "activity_level": world.user_profile[:, 3]})
    users.close()
    ads = _CsvTable(out / "ads.csv", ("ad_id", "category", "title", "attributes"))
    ads.write({"ad_id": np.arange(world.n_ads), "category": world.ad_category,
               "title": world.ad_title_texts, "attributes": world.ad_attribute_texts})
    ads.close()
    sps = _CsvTable(out / "selling_points.csv", ("keyword", "facet"))
    sps.write({"keyword": world.keyword_names,
               "facet": np.asarray(config.facets)[world.keyword_facet]})
    sps.close()
    stages.update(1)

    sf = _CsvTable(out / "sf_impressions.csv",
                   ("impression_id", "user_id", "query", "sf_keyword", "day", "ts", "clicked"))
    sf_oracle = _CsvTable(out / "oracle/sf_impressions.csv", SF_ORACLE_COLUMNS)
    ad = _CsvTable(out / "ad_impressions.csv", ("impression_id", "user_id", "query", "ad_id",
                                                "position", "day", "ts", "clicked"))
    ad_oracle = _CsvTable(out / "oracle/ad_impressions.csv", ("impression_id", "p_click"))
    for day in range(config.days):
        traffic = simulate_search_day(world, day, day_rngs[day])
        for table, oracle, rows, item, item_names in (
            (sf, sf_oracle, traffic.sf, "sf_keyword", world.keyword_names),
            (ad, ad_oracle, traffic.ads, "ad_id", None),
        ):
            ids = np.arange(table.rows, table.rows + rows["user_id"].size)
            columns = {
                "impression_id": ids, "user_id": rows["user_id"],
                "query": _dictionary(rows["query"], world.query_texts),
                item: (_dictionary(rows[item], item_names) if item_names is not None
                       else rows[item]),
                "position": rows.get("position"), "day": np.full(ids.size, day),
                "ts": rows["ts"], "clicked": rows["clicked"].astype(np.int8),
            }
            table.write(columns)
            probabilities = {"impression_id": ids, "p_click": _probability(rows["p_click"])}
            if oracle is sf_oracle:
                # unrounded (shortest round-trip text): scored as computed, no figure moves
                ceilings = world.sf_ceilings(rows["user_id"], rows["query"], rows[item])
                probabilities.update({f"ceiling_{name}": ceilings[name] for name in SF_CEILINGS})
            oracle.write(probabilities)
        stages.update(1)
    for table in (sf, sf_oracle, ad, ad_oracle):
        table.close()

    log = simulate_behaviour(world, behaviour_rng)
    behaviour = _CsvTable(out / "behaviour.csv", ("user_id", "item_id", "category", "behavior",
                                                  "ts"))
    behaviour.write({"user_id": log.user, "item_id": log.item, "category": log.category,
                     "behavior": _dictionary(log.behavior, np.array(BEHAVIOURS)), "ts": log.ts})
    behaviour.close()
    ceilings = behaviour_ceilings(world, log, np.random.default_rng(np.random.SeedSequence([seed, 3])))
    behaviour_oracle = _CsvTable(out / "oracle/behaviour.csv", BEHAVIOUR_ORACLE_COLUMNS)
    behaviour_oracle.write({"user_id": log.oracle_user, "ts": log.oracle_ts,
                            "p_click": _probability(log.oracle_p_click),
                            "p_conversion": _probability(log.oracle_p_conversion),
                            **{name: _probability(getattr(ceilings, name))
                               for name in BEHAVIOUR_ORACLE_COLUMNS[4:]}})
    behaviour_oracle.close()
    stages.update(1)
    stages.close()

    rows = {"users.csv": users.rows, "ads.csv": ads.rows, "selling_points.csv": sps.rows,
            "sf_impressions.csv": sf.rows, "ad_impressions.csv": ad.rows,
            "behaviour.csv": behaviour.rows, "oracle/sf_impressions.csv": sf_oracle.rows,
            "oracle/ad_impressions.csv": ad_oracle.rows,
            "oracle/behaviour.csv": behaviour_oracle.rows}
    manifest = {
        "parameters": _run_parameters(config, seed),
        "window": {"start": config.window_start,
                   "end": config.window_start + config.days * 86_400},
        "files": {name: {"rows": rows[name], "sha256": _sha256(out / name)} for name in LOG_FILES},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
