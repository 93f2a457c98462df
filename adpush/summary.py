"""What ``adpush run`` prints: one line per finished stage and the closing summary."""
from __future__ import annotations

from pathlib import Path


def result_line(stage: str, result: dict) -> str:
    """The one line a finished stage reports (the summary at the end has the details)."""
    try:
        if stage == "simulate":
            rows = result["rows"]
            return (f"{rows['sf_impressions.csv']:,} SF and {rows['ad_impressions.csv']:,} ad impressions, "
                    f"{rows['behaviour.csv']:,} behaviour events")
        if stage == "build":
            total = sum(sum(c.values()) for c in result["row_counts"].values())
            return f"{total:,} examples, {result['rejected']} rows dead-lettered"
        if stage == "train_sf":
            return f"test AUC {_fmt(result['auc'])} (oracle {_fmt(result['oracle_auc'])})"
        if stage == "train_cascade":
            m = result["metrics"]
            return (f"test click AUC {_fmt(m['click']['auc'])}, conversion AUC "
                    f"{_fmt(m['conversion']['auc'])}")
        if stage == "export":
            return ", ".join(f"{name} v{Path(path).name}" for name, path in result["versions"].items())
        if stage == "abtest":
            return f"{len(result['lifts'])} experiments, report {result['report']}"
    except (KeyError, TypeError, AttributeError):
        return ""
    return ""


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_summary(ctx, results: dict) -> None:
    """The closing summary of ``adpush run`` (``ctx``: its RunContext)."""
    print("\nadpush run summary")
    print(f"  run directory: {ctx.run_dir}")
    for name, result in results.items():
        print(f"  {name:<10} {result.get('seconds', 0):>7.1f} s")
    if "simulate" in results:
        rows = results["simulate"]["rows"]
        print(f"  logs: {results['simulate']['logs']} "
              f"({rows['sf_impressions.csv']:,} SF impressions, "
              f"{rows['ad_impressions.csv']:,} ad impressions, "
              f"{rows['behaviour.csv']:,} behaviour events)")
    if "train_sf" in results:
        r = results["train_sf"]
        print(f"  selling-point model: test AUC {_fmt(r['auc'])} vs oracle {_fmt(r['oracle_auc'])}"
              f" ({r['run_dir']}/metrics.json, roc.png, training_curves.png)")
    if "train_cascade" in results:
        m, o = results["train_cascade"]["metrics"], results["train_cascade"]["oracle"]
        print(f"  CTR->CVR model: click AUC {_fmt(m['click']['auc'])} vs oracle "
              f"{_fmt(o['click']['auc'])}, conversion AUC {_fmt(m['conversion']['auc'])}"
              f" vs oracle {_fmt(o['conversion']['auc'])} "
              f"({results['train_cascade']['run_dir']}/metrics.json)")
    if "export" in results:
        print(f"  models: {results['export']['model_base_path']} "
              f"(adpush serve --model_config_file ... or tensorflow/serving)")
    if "abtest" in results:
        r = results["abtest"]
        print(f"  A/B report: {r['report']}")
        from abtest.report import console_line

        oracle = r.get("oracle_lifts") or [None] * len(r["lifts"])
        for row, best in zip(r["lifts"], oracle):
            print("    served " + console_line(row))
            if best is not None:
                # The share of the oracle's lift on the primary figure (CUPED when present).
                key = "relative_lift_cuped" if row.get("relative_lift_cuped") is not None \
                    else "relative_lift"
                p_key = "p_value_cuped" if key.endswith("cuped") else "p_value"
                if best.get(key) and (best.get(p_key) is None or best[p_key] < 0.05):
                    share = f"{100 * row[key] / best[key]:.0f}%"
                else:  # a share of a lift the oracle itself does not show means nothing
                    share = "- (the oracle's lift is not significant)"
                print("    oracle " + console_line(best) + f"  served/oracle {share}"
                      + (" (CUPED)" if key.endswith("cuped") else ""))
    if "build" in results:
        counts = results["build"]["row_counts"]
        text = ", ".join(f"{name} {sum(c.values()):,}" for name, c in counts.items())
        print(f"  data: {results['build']['data']} ({text} examples; "
              f"{results['build']['rejected']} rows dead-lettered)")
