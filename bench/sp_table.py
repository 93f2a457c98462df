"""001 Table 3 on a world: test AUC of BM / MTDL / AMTDL × strategy per segment, with the oracle
and the restricted-oracle ceilings (``World.sf_ceilings``).

Every run uses the same budget (epochs, batch size, patience, model config); early stopping and
every choice are on the validation split; the test split is only scored. Runs already evaluated
(``<out>/<model>_<strategy>/metrics.json``) are reused, so an interrupted table resumes.

    .venv/bin/python bench/sp_table.py --data /tmp/dw/data --logs /tmp/dw/logs --out /tmp/dw/table \
        --epochs 3 --batch-size 1024
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RUNS = (("bm", "joint"), ("mtdl", "joint"), ("mtdl", "alternating"),
        ("mtdl", "pretrain_finetune"), ("amtdl", "joint"), ("amtdl", "alternating"),
        ("amtdl", "pretrain_finetune"))
REFERENCE = ("oracle", "ceiling_popularity", "ceiling_query", "ceiling_profile")


def table(results: dict) -> str:
    """Markdown: one row per segment (and overall), one column per run, then the references."""
    runs = [r for r in RUNS if f"{r[0]}_{r[1]}" in results]
    first = results[f"{runs[0][0]}_{runs[0][1]}"]
    refs = [name for name in REFERENCE if name in first["test"]]
    header = (["segment", "users"] + [f"{m.upper()} {s}" for m, s in runs]
              + [r.replace("ceiling_", "ceil. ") for r in refs])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    segments = [("overall", first["test"], None)] + [
        (name, seg, seg["n_users"]) for name, seg in sorted(first["segments"].items())]
    for name, seg, users in segments:
        def auc(result, scorer, name=name):
            block = result["test"] if name == "overall" else result["segments"].get(name, {})
            value = block.get(scorer, {}).get("auc")
            return "–" if value is None else f"{value:.4f}"

        cells = [name, "" if users is None else str(users)]
        cells += [auc(results[f"{m}_{s}"], "model") for m, s in runs]
        cells += [auc(first, r) for r in refs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--logs", required=True, help="the world's simulate-logs output")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pretrain-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--model-config", default="{}",
                        help="JSON of ModelConfig fields shared by every run")
    parser.add_argument("--train-config", default="{}",
                        help="JSON of more TrainConfig fields shared by every run "
                             "(e.g. '{\"joint_batches\": \"proportional\"}')")
    parser.add_argument("--runs", default="",
                        help="comma-separated model_strategy runs, in this order (default: all seven)")
    parser.add_argument("--baseline", action="store_true",
                        help="also fit the LR baseline in every evaluation (bench/peers.py sf "
                             "fits it once for all runs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import tfrs_models  # noqa: F401, PLC0415 - selects Keras 2
    from tfrs_models.input import load_spec  # noqa: PLC0415
    from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig  # noqa: PLC0415
    from tfrs_models.selling_point.evaluation import evaluate_run  # noqa: PLC0415
    from tfrs_models.training.strategies import train  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(args.data)
    wanted = [w for w in args.runs.split(",") if w]
    order = [tuple(w.split("_", 1)) for w in wanted] if wanted else list(RUNS)
    extra = json.loads(args.model_config)
    results, timings = {}, {}
    for model, strategy in order:
        name = f"{model}_{strategy}"
        run_dir = out / name
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.exists():
            config = RunConfig(
                data_dir=args.data, model=ModelConfig(name=model, **extra),
                train=TrainConfig(strategy=strategy, epochs=args.epochs,
                                  pretrain_epochs=args.pretrain_epochs, patience=args.patience,
                                  batch_size=args.batch_size, learning_rate=args.learning_rate,
                                  seed=args.seed, **json.loads(args.train_config)))
            start = time.time()
            trained = train(spec, config, run_dir, verbose=0)
            timings[name] = round(time.time() - start, 1)
            evaluate_run(run_dir, oracle_dir=args.logs, baseline=args.baseline)
            print(f"{name}: best valid AUC {trained.best_valid_auc:.4f} in {timings[name]} s",
                  flush=True)
        results[name] = json.loads(metrics_path.read_text())
        (out / "table.md").write_text(table(results) + "\n")
    (out / "table.json").write_text(json.dumps({
        "args": vars(args), "train_seconds": timings,
        "auc": {name: {"overall": r["test"]["model"]["auc"],
                       **{seg: v["model"]["auc"] for seg, v in r["segments"].items()},
                       "ad_click": r.get("auxiliary_ad_click", {}).get("auc")}
                for name, r in results.items()}}, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
