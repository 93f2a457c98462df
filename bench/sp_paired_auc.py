"""Are the selling-point models' AUC differences real? Paired test-AUC differences against a
reference run, with 95% intervals from a bootstrap over users (tfrs_models.metrics.
PairedAucBootstrap), overall and per 001 Table 3 segment.

    .venv/bin/python bench/sp_paired_auc.py --data /tmp/dw/data --reference /tmp/dw/table/bm_joint \
        --runs /tmp/dw/table/mtdl_pretrain_finetune /tmp/dw/table/amtdl_alternating [--reps 1000]

Prints a markdown table and writes ``<reference>/../paired_auc.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--reference", required=True, help="run directory every run is compared with")
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import tfrs_models  # noqa: F401, PLC0415 - selects Keras 2
    from tfrs_models import metrics  # noqa: PLC0415
    from tfrs_models.selling_point.evaluation import table3_segments_of  # noqa: PLC0415
    from tfrs_models.selling_point.predict import predict_split  # noqa: PLC0415
    from tfrs_models.training.strategies import load_trained_model  # noqa: PLC0415

    def test_scores(run_dir):
        model, spec, _ = load_trained_model(Path(run_dir), args.data)
        pred = predict_split(model, spec, "sf", "test")
        order = np.argsort(pred["impression_id"], kind="stable")
        return spec, {k: v[order] for k, v in pred.items()}

    spec, ref = test_scores(args.reference)
    labels, users = ref["clicked"], ref["user_id"]
    segments = table3_segments_of(spec, users)
    blocks = {"overall": np.ones(labels.size, bool)}
    blocks.update({name: segments == name for name in sorted(set(segments.tolist()))})
    boots = {name: metrics.PairedAucBootstrap(labels[mask], users[mask], args.reps, args.seed)
             for name, mask in blocks.items()}
    ref_reps = {name: boots[name].replicates(ref["prob"][mask]) for name, mask in blocks.items()}

    results = {}
    for run in args.runs:
        _, pred = test_scores(run)
        if not np.array_equal(pred["impression_id"], ref["impression_id"]):
            raise SystemExit(f"{run}: its test rows differ from {args.reference}'s")
        results[Path(run).name] = {
            name: boots[name].difference(pred["prob"][mask], ref["prob"][mask],
                                         reference_replicates=ref_reps[name])
            for name, mask in blocks.items()}
        print(f"{Path(run).name}: done", flush=True)

    ref_name = Path(args.reference).name
    lines = [f"| run − {ref_name} | " + " | ".join(blocks) + " |", "|---|" + "---|" * len(blocks)]
    for run, by_block in results.items():
        cells = [f"{d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
                 + (f"p<{1 / args.reps:.3g}" if d["p"] == 0 else f"p={d['p']:.3f}")
                 for d in by_block.values()]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    out = Path(args.out) if args.out else Path(args.reference).parent / "paired_auc.json"
    out.write_text(json.dumps({"reference": ref_name, "reps": args.reps, "seed": args.seed,
                               "users": {n: int(np.unique(users[m]).size) for n, m in blocks.items()},
                               "differences": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
