"""Learning curve of the selling-point model: test AUC vs the number of SF train rows, the model
and the LR baseline fit on exactly the same rows, with the world's restricted ceilings beside.

What it answers: is the demo world's SF data what keeps the model below the baseline and the
popularity ceiling, and how many SF train rows does it need (issue 13)? Give it the build-data
output of a world *larger* than the one being sized (e.g. the demo world with more SF exposure)
and its logs; for each fraction ``f`` it keeps a seeded random ``f`` of the SF train rows (nested:
each smaller set is a subset of the larger), writes a data directory whose ``spec.json`` points at
those rows and at the untouched valid/test/ad_click files, then

- trains the model exactly as ``adpush run``'s train_sf stage does (``adpush train sf`` with the
  ``[train]`` settings of the effective adpush config, ``--config`` to change them), early stopping
  on the full validation split;
- ``adpush evaluate``: the LR baseline (C on validation) on the same train rows, the model, the
  restricted ceilings and the oracle, all scored on the same, full test split.

``--subsample sf,ad_click`` thins the ad-click train rows by the same fraction too (a world with
fewer sessions); the default thins the SF rows only (a world with less SF-bar exposure and the
same ad traffic, which is the demo's sizing knob ``sf_exposure_scale``). The history features are
the larger world's (they come from the users' clicks before each impression's day).
Prints a table, writes ``OUT/learning_curve.json`` and ``OUT/learning_curve.png``; points already
evaluated are reused, so an interrupted curve resumes.

    .venv/bin/python bench/sp_learning_curve.py --data W/data --logs W/logs --out W/curve \
        --fractions 0.125,0.25,0.5,1
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REFERENCES = ("ceiling_popularity", "ceiling_query", "ceiling_profile", "oracle")


def subsample_keep(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over ``n`` rows: row ``i`` kept iff ``u_i < fraction`` for one seeded uniform
    ``u`` per row, so the kept sets are nested across fractions."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return np.random.default_rng([seed, 0x5F1C]).random(n) < fraction


def write_subsample(data: Path, out: Path, fraction: float, seed: int,
                    datasets=("sf",)) -> dict:
    """``out/spec.json``: ``data``'s spec with the train split of ``datasets`` thinned to
    ``fraction`` (one TFRecord file each under ``out``); every other file is ``data``'s,
    referenced by absolute path. Returns ``{dataset: (rows kept, positives kept)}``."""
    import tensorflow as tf  # noqa: PLC0415

    from tfrs_models.input import load_spec  # noqa: PLC0415

    spec = load_spec(data)
    raw = json.loads((data / "spec.json").read_text())
    for vocab in raw.get("vocabularies", {}).values():
        vocab["file"] = str((data / vocab["file"]).resolve())
    kept = {}
    for name, dataset in raw["datasets"].items():
        for split in dataset["files"]:
            dataset["files"][split] = [str(Path(p).resolve())
                                       for p in spec.dataset(name).split_files(split)]
        if name not in datasets:
            continue
        files = dataset["files"]["train"]
        compression = dataset.get("compression", "")
        records = list(tf.data.TFRecordDataset(files, compression_type=compression).as_numpy_iterator())
        mask = subsample_keep(len(records), fraction, seed)
        label = dataset["labels"][0]
        # The dataset's own compression: its valid/test files are read with the same setting.
        target = out / name / ("train-00000-of-00001.tfrecord" + (".gz" if compression else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        positives = 0
        with tf.io.TFRecordWriter(str(target), tf.io.TFRecordOptions(compression_type=compression)) as writer:
            for record, keep in zip(records, mask):
                if keep:
                    writer.write(record)
                    example = tf.train.Example.FromString(record)
                    values = example.features.feature[label]
                    positives += int(sum(values.int64_list.value) or sum(values.float_list.value))
        rows = int(mask.sum())
        dataset["files"]["train"] = [str(target.relative_to(out))]
        dataset["row_counts"]["train"] = rows
        dataset.setdefault("label_rates", {})["train"] = {label: positives / max(rows, 1)}
        kept[name] = (rows, positives)
    (out / "spec.json").write_text(json.dumps(raw, indent=1))
    return kept


def train_command(config: dict, data: Path, run_dir: Path, seed: int) -> list[str]:
    """``adpush train sf`` exactly as ``adpush run``'s train_sf stage calls it."""
    train = config["train"]
    return [sys.executable, "-m", "adpush.cli", "train", "sf", "--model", train["model"],
            "--strategy", train["strategy"], "--data", str(data), "--run-dir", str(run_dir),
            "--seed", str(seed), "--epochs", str(train["sf_epochs"]),
            "--pretrain-epochs", str(train["sf_pretrain_epochs"]),
            "--patience", str(train["sf_patience"]),
            "--learning-rate", str(train["sf_learning_rate"]),
            "--batch-size", str(train["batch_size"]), "--quiet", *train["sf_args"].split()]


def point(args, config: dict, fraction: float, seed: int) -> dict:
    """Train + evaluate one (fraction, seed); reuses ``metrics.json`` when it is there."""
    from tfrs_models.selling_point.evaluation import evaluate_run  # noqa: PLC0415

    datasets = tuple(d for d in args.subsample.split(",") if d)
    where = Path(args.out) / f"f{fraction:g}_s{seed}"
    run_dir = where / "run"
    summary_path = where / "point.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    start = time.time()
    if fraction == 1.0 and args.full_run:
        # All the rows: an existing run trained by the same command on --data (e.g. the
        # demo's RUN/train/sf, evaluated with --oracle by `adpush run`), read as it is.
        run_dir = Path(args.full_run)
        config_json = json.loads((run_dir / "config.json").read_text())
        if Path(config_json["data_dir"]).resolve() != Path(args.data).resolve() or \
                config_json["train"]["seed"] != seed:
            raise SystemExit(f"--full-run {run_dir} was trained on {config_json['data_dir']} "
                             f"with seed {config_json['train']['seed']}, not {args.data} / {seed}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        spec = json.loads((Path(args.data) / "spec.json").read_text())["datasets"]["sf"]
        rows = spec["row_counts"]["train"]
        kept = {"sf": (rows, round(rows * spec["label_rates"]["train"]["clicked"]))}
        history, train_seconds = run_dir / "history.json", float("nan")
    else:
        kept = write_subsample(Path(args.data), where / "data", fraction, seed, datasets)
        history = run_dir / "history.json"
        if not (run_dir / "model").exists() or not history.is_file():
            subprocess.run(train_command(config, where / "data", run_dir, seed), check=True)
        train_seconds = time.time() - start
        metrics = evaluate_run(run_dir, where / "data", oracle_dir=args.logs)
    epochs = [r for r in json.loads(history.read_text()) if r["phase"] == "main"]
    best = min(epochs, key=lambda r: r["valid_logloss"])
    result = {"fraction": fraction, "seed": seed, "sf_train_rows": kept["sf"][0],
              "sf_train_clicks": kept["sf"][1], "kept": kept, "epochs": len(epochs),
              "best_valid_logloss": best["valid_logloss"], "best_valid_auc": best["valid_auc"],
              "baseline_c": metrics.get("baseline_fit", {}).get("chosen_C"),
              "test_auc": {name: metrics["test"][name]["auc"]
                           for name in ("model", "baseline", *REFERENCES)
                           if name in metrics["test"]},
              "segments": {seg: {name: v[name]["auc"] for name in ("model", "baseline")
                                 if name in v} for seg, v in metrics["segments"].items()},
              "seconds": round(time.time() - start, 1), "train_seconds": round(train_seconds, 1),
              "run_dir": str(run_dir)}
    where.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(result, indent=1))
    return result


def table(points: list[dict]) -> str:
    refs = [r for r in REFERENCES if r in points[0]["test_auc"]]
    header = ["fraction", "seed", "SF train rows", "clicks", "clicks/keyword", "epochs",
              "model", "baseline", "model − baseline",
              *[r.replace("ceiling_", "ceil. ") for r in refs]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in points:
        auc = p["test_auc"]
        lines.append("| " + " | ".join([
            f"{p['fraction']:g}", str(p["seed"]), f"{p['sf_train_rows']:,}",
            f"{p['sf_train_clicks']:,}", f"{p['sf_train_clicks'] / p['n_keywords']:.1f}",
            str(p["epochs"]), f"{auc['model']:.4f}", f"{auc['baseline']:.4f}",
            f"{auc['model'] - auc['baseline']:+.4f}", *[f"{auc[r]:.4f}" for r in refs]]) + " |")
    return "\n".join(lines)


def plot(points: list[dict], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for who, style in (("model", "o-"), ("baseline", "s--")):
        rows = sorted({p["sf_train_rows"] for p in points})
        by_rows = {r: [p["test_auc"][who] for p in points if p["sf_train_rows"] == r] for r in rows}
        xs = sorted({p["fraction"] for p in points})
        mean = [np.mean([p["test_auc"][who] for p in points if p["fraction"] == f]) for f in xs]
        rows_mean = [np.mean([p["sf_train_rows"] for p in points if p["fraction"] == f]) for f in xs]
        label = "AMTDL (what make demo trains)" if who == "model" else "LR baseline, same rows"
        ax.plot(rows_mean, mean, style, label=label)
        if len(points) > len(xs):  # several seeds: every point as well
            for r, values in by_rows.items():
                ax.scatter([r] * len(values), values, s=10, alpha=0.4,
                           color=ax.lines[-1].get_color())
    colors = {"ceiling_popularity": "tab:red", "ceiling_query": "tab:orange",
              "ceiling_profile": "tab:green"}
    for name, color in colors.items():
        values = [p["test_auc"][name] for p in points if name in p["test_auc"]]
        if values:
            ax.axhline(float(np.mean(values)), color=color, linestyle=":",
                       label=name.replace("ceiling_", "ceiling: "))
    ax.set_xscale("log")
    ax.set_xlabel("SF train rows (log scale)")
    ax.set_ylabel("test AUC (same test rows for every point)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="build-data output of the (larger) world")
    parser.add_argument("--logs", required=True, help="its simulate-logs output (ceilings, oracle)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--fractions", default="0.125,0.25,0.5,1",
                        help="comma-separated shares of the SF train rows to train on")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (subsample + training)")
    parser.add_argument("--subsample", default="sf",
                        help="datasets whose train rows are thinned: sf (default) or sf,ad_click")
    parser.add_argument("--full-run", default=None,
                        help="an evaluated run already trained on all of --data with the same "
                             "command and seed (e.g. RUN/train/sf of `adpush run`): the fraction-1 "
                             "point, not retrained")
    parser.add_argument("--config", default=None,
                        help="adpush config TOML whose [train] settings are used (default: the "
                             "embedded defaults, i.e. what make demo trains)")
    args = parser.parse_args(argv)

    import tfrs_models  # noqa: F401, PLC0415 - selects Keras 2
    from abtest.world.config import WorldConfig  # noqa: PLC0415
    from adpush.config import load_config  # noqa: PLC0415

    config = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(args.logs) / "manifest.json").read_text())
    n_keywords = WorldConfig.from_manifest(manifest["parameters"]["world"]).n_keywords
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    points = []
    for seed in seeds:
        for fraction in fractions:
            p = point(args, config, fraction, seed)
            p["n_keywords"] = n_keywords
            points.append(p)
            print(f"fraction {fraction:g} seed {seed}: {p['sf_train_rows']:,} SF train rows, "
                  f"model {p['test_auc']['model']:.4f}, baseline {p['test_auc']['baseline']:.4f} "
                  f"({p['seconds']} s)", flush=True)
            (out / "learning_curve.md").write_text(table(points) + "\n")
    train = config["train"]
    title = (f"{Path(args.data).resolve()}: {n_keywords} keywords; AMTDL {train['strategy']}, "
             f"lr {train['sf_learning_rate']}, batch {train['batch_size']}, patience "
             f"{train['sf_patience']}")
    plot(points, out / "learning_curve.png", title)
    (out / "learning_curve.json").write_text(json.dumps(
        {"args": vars(args), "n_keywords": n_keywords, "train": train, "points": points}, indent=1))
    print(table(points))
    print(f"wrote {out / 'learning_curve.png'} and {out / 'learning_curve.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
