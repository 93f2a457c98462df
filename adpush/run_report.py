"""The report of one ``adpush run``: ``RUN/report.html`` (self-contained), ``.md`` and ``.json``.

What a person reads after the demo, in the order the flow ran: stage times; the selling-point
model's test figures next to the oracle's (overall and per 001 Table 3 segment) with its ROC and
training curves; the CTR→CVR model's figures; the 001 A/B replay's lift table (the same columns
as ``abtest.report``) with its forest and cumulative-lift plots. Every figure is read from the
files the stages wrote, so the report can be rebuilt at any time (``write_run_report(RUN,
results)``) and never disagrees with them.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Mapping

from abtest.report import figure_html, html_page, report_columns, table_html
from abtest.report import table_rows as ab_table_rows
from tfrs_models import run_dir as run_files

EXTRA_CSS = """td:first-child { text-align: left; }
figure img { max-width: 860px; }
.source { color: #777; font-size: 0.8em; }
"""
CEILINGS = ("ceiling_popularity", "ceiling_query", "ceiling_profile")
CASCADE_ROWS = (("click", "auc", "click AUC (all impressions)"),
                ("conversion", "auc", "conversion AUC (all impressions)"),
                ("cvr_auc_clicked", None, "CVR AUC (clicked impressions)"),
                ("click", "logloss", "click logloss"), ("conversion", "logloss", "conversion logloss"))


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _sf_section(results: Mapping) -> dict | None:
    if "train_sf" not in results:
        return None
    run_dir = Path(results["train_sf"]["run_dir"])
    metrics = run_files.read(run_dir, run_files.METRICS)
    config = run_files.read(run_dir, run_files.CONFIG)
    test = metrics["test"]
    # AUC of the model, of the baseline on the same rows (issue 13), of each restricted oracle
    # (what a model could learn at best, issue 4) and of the oracle; GAUC and logloss of model,
    # baseline and oracle.
    pair = [w for w in ("model", "baseline") if w in test]
    scorers = [*pair, *[c for c in CEILINGS if c in test], "oracle"]
    columns = [("auc", who) for who in scorers] + [(m, who) for m in ("gauc", "logloss")
                                                     for who in (*pair, "oracle")]

    def cells(node: Mapping) -> list[str]:
        return [_num(node.get(who, {}).get(metric)) for metric, who in columns]

    rows = [["all test users", *cells(test)]]
    for name, segment in metrics.get("segments", {}).items():
        rows.append([f"{name} ({segment.get('n_users', 0):,} users)", *cells(segment)])
    header = ["segment (SF clicks, ad clicks per user)",
              *[f"{metric} {who.replace('ceiling_', 'ceiling ')}" for metric, who in columns]]
    images = {name: run_dir / name for name in ("roc.png", "training_curves.png")
              if (run_dir / name).is_file()}
    title = (f"Selling-point model (001): {config['model']['name']}, "
             f"{config['train']['strategy']}")
    return {"title": title, "header": header, "rows": rows, "images": images,
            "source": str(run_dir / run_files.METRICS)}


def _cascade_section(results: Mapping) -> dict | None:
    if "train_cascade" not in results:
        return None
    run_dir = Path(results["train_cascade"]["run_dir"])
    metrics = run_files.read(run_dir, run_files.METRICS)
    config = run_files.read(run_dir, run_files.CONFIG)["model"]
    test = metrics["test"]
    # The model on the rows the oracle file covers (all test rows on world data), then the
    # restricted ceilings and the oracle on the same rows.
    scorers = [("model", test.get("model_on_oracle_rows", test["model"]))]
    scorers += [(name.replace("ceiling_", "ceiling "), value) for name, value in test.items()
                if name.startswith("ceiling_")]
    if "oracle" in test:
        scorers.append(("oracle", test["oracle"]))
    rows = []
    for task, metric, label in CASCADE_ROWS:
        rows.append([label, *[_num(node.get(task) if metric is None else node.get(task, {}).get(metric))
                              for _, node in scorers]])
    joined = metrics.get("oracle_rows")
    title = (f"CTR→CVR model (000): {config['name']} with the {config['encoder']['name']} "
             "sequence encoder" + (f", {joined:,} test rows" if joined is not None else ""))
    return {"title": title, "header": ["test figure", *[name for name, _ in scorers]],
            "rows": rows, "images": {}, "source": str(run_dir / run_files.METRICS)}


def _ab_section(results: Mapping) -> dict | None:
    if "abtest" not in results:
        return None
    report_html = Path(results["abtest"]["report"])
    document = _read_json(report_html.with_name("report.json"))
    comparisons = document.get("comparisons", [])
    images = {name: report_html.with_name(name) for name in ("forest_plot.png", "cumulative_lift.png")
              if report_html.with_name(name).is_file()}
    return {"title": "001 Table 2 replayed: the personalised policy served over REST",
            "header": list(report_columns(comparisons)), "rows": ab_table_rows(comparisons), "images": images,
            "source": str(report_html), "html": table_html(comparisons)}


def _stage_section(results: Mapping) -> dict:
    rows = [[name, _num(result.get("seconds"), 1)] for name, result in results.items()]
    total = sum(r.get("seconds", 0) or 0 for r in results.values())
    rows.append(["total", _num(total, 1)])
    return {"title": "Stages", "header": ["stage", "seconds"], "rows": rows, "images": {},
            "source": ".stages/*.json"}


def _markdown(title: str, sections: list[dict], run_dir: Path) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s['title']}", "", "| " + " | ".join(s["header"]) + " |",
                  "|" + "---|" * len(s["header"])]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in s["rows"]]
        lines += [""] + [f"![{name}]({os.path.relpath(path, run_dir)})"
                         for name, path in s["images"].items()]
        lines += [f"Source: `{s['source']}`", ""]
    return "\n".join(lines) + "\n"


def _html(title: str, sections: list[dict]) -> str:
    esc = html.escape
    parts = []
    for s in sections:
        head = "".join(f"<th>{esc(h)}</th>" for h in s["header"])
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>\n"
                       for row in s["rows"])
        # The A/B table keeps abtest.report's layout (numbers unwrapped, lifts shaded by direction).
        table = s.get("html") or f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
        figures = "".join(figure_html(name, path.read_bytes()) for name, path in s["images"].items())
        parts.append(f"<section><h2>{esc(s['title'])}</h2>\n{table}{figures}"
                     f"<p class=\"source\">Source: {esc(s['source'])}</p></section>\n")
    return html_page(title, "".join(parts), extra_css=EXTRA_CSS)


def write_run_report(run_dir: str | Path, results: Mapping[str, Mapping]) -> dict[str, Path]:
    """Write ``RUN/report.{html,md,json}`` from the stage results; return their paths."""
    run_dir = Path(run_dir)
    sections = [s for s in (_stage_section(results), _sf_section(results),
                            _cascade_section(results), _ab_section(results)) if s is not None]
    title = f"adpush run {run_dir.name}"
    paths = {"html": run_dir / "report.html", "markdown": run_dir / "report.md",
             "json": run_dir / "report.json"}
    paths["html"].write_text(_html(title, sections), encoding="utf-8")
    paths["markdown"].write_text(_markdown(title, sections, run_dir), encoding="utf-8")
    document = {"title": title, "stages": dict(results),
                "sections": [{k: (v if k != "images" else {n: str(p) for n, p in v.items()})
                              for k, v in s.items() if k != "html"} for s in sections]}
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return paths
