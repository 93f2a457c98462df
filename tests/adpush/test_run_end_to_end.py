"""`adpush run` end to end on a tiny config: every stage, the run report, and a resumed re-run.

Runs the real flow — world → Beam (FnApiRunner) → SF and CTR→CVR training → export → local
server → 001 A/B replay over REST — in a subprocess, as `make demo` does, then opens the
report in headless Chromium.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.browser import dump_dom, screenshot

pytestmark = pytest.mark.slow

TINY = """
[world]
n_users = 400
n_ads = 600
days = 6
behaviour_users = 600
behaviour_events_mean = 38.0   # 400 users x 38 = the cascade data of main's 600 x 25
keywords_per_facet = 10
n_categories = 8
category_words = 12
applicable_sps_per_category = 24
n_filler_words = 60
queries_per_category = 6
modifiers_per_facet = 2
ads_per_session = 10           # the library's ad traffic (the demo world shows 3 ads a session)
sessions_per_day = 6.0         # the demo's traffic before issue 13 sized it to 15 sessions a day
sf_exposure_scale = 2.0        # and the library's SF-bar exposure
sf_exposure_activity_corr = 0.0
ad_bias = -3.7

[beam]
min_count = 2

[train]
epochs = 1
sf_epochs = 2
sf_patience = 1
batch_size = 256

[abtest]
displays_per_experiment = 200_000
slots = 4
"""
STAGES = ("simulate", "build", "train_sf", "train_cascade", "export", "abtest")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _adpush_run(config: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adpush.cli", "run", "--config", str(config),
                           "--out", str(out), "--seed", "3", "--no-progress"],
                          capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adpush_run")
    config = root / "tiny.toml"
    config.write_text(TINY)
    done = _adpush_run(config, root / "run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, config, done.stdout


def test_every_stage_ran_and_the_summary_names_the_outputs(tiny_run):
    root, _, stdout = tiny_run
    run = root / "run"
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/6] {stage}: done in" in stdout
        marker = json.loads((run / ".stages" / f"{stage}.json").read_text())
        assert marker["result"]["seconds"] >= 0
    assert f"run report: {run / 'report.html'}" in stdout
    # [train] parallel (the default): the CTR->CVR training ran beside the SF training, its
    # console in its own log, not interleaved with train_sf's
    log = run / "train" / "cascade.log"
    assert f"train_cascade: train the CTR->CVR model (000), beside train_sf (its console: {log})" \
        in stdout
    assert "trained cnn_attention/tcn" in log.read_text()
    assert "trained cnn_attention/tcn" not in stdout
    assert re.search(r"CTR->CVR model: click AUC 0\.\d{4} vs oracle 0\.\d{4}, conversion AUC "
                     r"0\.\d{4} vs oracle 0\.\d{4}", stdout)
    # The summary's lift lines: one per experiment of 001 Table 2.
    assert len(re.findall(r"^    served No\.\d .*p=.*CUPED .*p=", stdout, flags=re.M)) == 5
    # ... each with the oracle scorer's lift on the same world and draws, and the share of it
    # (or "-" where the oracle's own lift is not significant: a share of nothing)
    shares = re.findall(r"^    oracle No\.\d .*p=(.+?)  CUPED .*p=([^,]+), variance .*served/oracle "
                        r"(-?\d+%|- \(the oracle's lift is not significant\)) \(CUPED\)$",
                        stdout, flags=re.M)
    assert len(shares) == 5, stdout[-3000:]
    for _, p_cuped, share in shares:
        significant = p_cuped.startswith("<") or p_cuped == "n/a" or float(p_cuped) < 0.05
        assert share.endswith("%") == significant, (p_cuped, share)
    assert (run / "abtest_oracle" / "report.json").is_file()
    published = sorted(p.name for p in (run / "models").iterdir())
    assert published == ["ctr_cvr", "selling_points"]
    assert (run / "models" / "selling_points" / "1" / "saved_model.pb").is_file()


def test_metrics_and_report_agree(tiny_run):
    run = tiny_run[0] / "run"
    metrics = json.loads((run / "train" / "sf" / "metrics.json").read_text())
    model_auc = metrics["test"]["model"]["auc"]
    oracle_auc = metrics["test"]["oracle"]["auc"]
    assert 0.0 < model_auc < 1.0 and oracle_auc > 0.6  # the world's signal is there to find
    report = json.loads((run / "report.json").read_text())
    titles = [s["title"] for s in report["sections"]]
    assert titles[0] == "Stages" and titles[1].startswith("Selling-point model (001): amtdl")
    assert titles[2].startswith("CTR→CVR model (000): cnn_attention")
    # the CTR→CVR figures sit beside the ceilings and the oracle, all on the same test rows
    cascade = json.loads((run / "train" / "cascade" / "metrics.json").read_text())
    assert cascade["oracle_rows"] == cascade["rows"] > 0
    test = cascade["test"]
    assert test["model_on_oracle_rows"] == test["model"]
    assert test["oracle"]["click"]["auc"] > test["ceiling_item"]["click"]["auc"]
    section = report["sections"][2]
    assert section["header"] == ["test figure", "model", "ceiling item", "ceiling context", "oracle"]
    assert section["rows"][0][1:] == [
        f"{test[k]['click']['auc']:.4f}" for k in ("model", "ceiling_item", "ceiling_context", "oracle")]
    sf = report["sections"][1]
    overall = dict(zip(sf["header"], sf["rows"][0]))
    assert overall["segment (SF clicks, ad clicks per user)"] == "all test users"
    assert overall["auc model"] == f"{model_auc:.4f}" and overall["auc oracle"] == f"{oracle_auc:.4f}"
    # the LR baseline trained and scored on the same rows sits beside the model
    assert overall["auc baseline"] == f"{metrics['test']['baseline']['auc']:.4f}"
    assert metrics["baseline_fit"]["chosen_C"] in (0.03, 0.1, 0.3, 1.0)
    # the restricted oracles (what a model can learn at best) sit between popularity and oracle
    ceilings = [float(overall[f"auc ceiling {c}"]) for c in ("popularity", "query", "profile")]
    assert ceilings[0] < ceilings[2] < oracle_auc
    ab = report["sections"][3]
    assert [row[1].split(" ")[0] for row in ab["rows"]] == ["No.1", "No.2", "No.3", "No.4", "No.5"]
    ab_json = json.loads((run / "abtest" / "report.json").read_text())
    lift = ab_json["comparisons"][0]["relative_lift"]
    assert ab["rows"][0][7].startswith(f"{100 * lift:+.2f} %")
    for section in report["sections"]:
        for path in section["images"].values():
            assert Path(path).read_bytes()[:8] == PNG_MAGIC
    assert sum(len(s["images"]) for s in report["sections"]) == 4
    markdown = (run / "report.md").read_text()
    assert "![roc.png](train/sf/roc.png)" in markdown


def test_report_renders_in_chromium(tiny_run, tmp_path):
    import matplotlib.image as mpimg

    html = tiny_run[0] / "run" / "report.html"
    dom = dump_dom(html)
    assert len(re.findall(r"<table>", dom)) == 4
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom)) == 4
    assert "No.1 PSPSS" in dom and "all test users" in dom
    pixels = mpimg.imread(screenshot(html, tmp_path / "run_report.png", size="1400,4000"))[..., :3]
    # matplotlib's default blue (#1f77b4) draws the ROC and lift curves; a broken image has none.
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.06, axis=-1)
    assert blue.sum() > 500


def test_rerun_skips_finished_stages(tiny_run):
    root, config, _ = tiny_run
    again = _adpush_run(config, root / "run")
    assert again.returncode == 0, again.stderr[-3000:]
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/6] {stage}: already done, skipping" in again.stdout
    assert "run report:" in again.stdout
