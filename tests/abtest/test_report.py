"""Reports: table columns, self-contained HTML, JSON, and byte-identical output for one seed."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from abtest.aa import ClusteredTraffic
from abtest.report import COLUMNS, write_report
from abtest.stats import SufficientStats, compare, compare_all
from adpush.cli import main


def _experiment(seed: int, lift: float = 0.05, days: int = 4, users: int = 3000):
    """Cumulative per-day and overall comparisons of a control and two treatments."""
    rng = np.random.default_rng(seed)
    traffic = ClusteredTraffic()
    per_user = {}
    for bucket, factor in (("TSS", 1.0), ("PSPSS", 1.0 + lift), ("NSPSS", 1.0)):
        m = np.stack([traffic(users, rng)[0] // days + 1 for _ in range(days)])  # [days, users]
        theta = np.clip(rng.beta(2, 50, users) * factor, 0, 1)
        per_user[bucket] = (m, rng.binomial(m, theta))
    per_day = []
    for d in range(days):
        stats = {b: SufficientStats.from_arrays(m[: d + 1].sum(0), c[: d + 1].sum(0)) for b, (m, c) in per_user.items()}
        per_day += compare_all(stats, "TSS", day=d, sequential_mode=True)
    overall = [c for c in per_day if c.day == days - 1]
    return [compare(c.control, stats[c.control], c.treatment, stats[c.treatment]) for c in overall], per_day


def test_write_report_files_and_columns(tmp_path):
    comparisons, per_day = _experiment(seed=1)
    paths = write_report(comparisons, per_day, out_dir=tmp_path, title="SP experiment")
    markdown = paths["markdown"].read_text()
    assert "| " + " | ".join(COLUMNS) + " |" in markdown
    assert markdown.count("\n| TSS | ") == 2
    assert "p (naive)" in markdown and "0.3" in markdown
    page = paths["html"].read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2  # forest plot + cumulative lift
    assert all(base64.b64decode(img)[:4] == b"\x89PNG" for img in images)
    assert "<script" not in page and "http" not in page.split("<body>")[1]
    document = json.loads(paths["json"].read_text())
    assert document["title"] == "SP experiment"
    assert [c["treatment"] for c in document["comparisons"]] == ["PSPSS", "NSPSS"]
    assert {c["day"] for c in document["per_day"]} == {0, 1, 2, 3}


def test_same_seed_same_report(tmp_path):
    outputs = []
    for run in ("a", "b"):
        paths = write_report(*_experiment(seed=7), out_dir=tmp_path / run, title="t")
        outputs.append({name: p.read_bytes() for name, p in paths.items()})
    assert outputs[0] == outputs[1]
    other = write_report(*_experiment(seed=8), out_dir=tmp_path / "c", title="t")
    assert other["json"].read_bytes() != outputs[0]["json"]


def test_report_accepts_dicts_and_flags_srm(tmp_path):
    a = SufficientStats.from_arrays(np.full(1200, 10), np.tile([0, 1, 2], 400))
    b = SufficientStats.from_arrays(np.full(1000, 10), np.tile([0, 1, 2, 1], 250))
    row = compare("base", a, "test", b).to_dict()
    assert row["srm_flag"]
    paths = write_report([row], out_dir=tmp_path)
    assert "Sample-ratio mismatch in base vs test" in paths["markdown"].read_text()
    assert "cumulative_lift.png" not in paths


def test_analyze_cli_writes_the_report(tmp_path):
    lines = ["bucket,user,day,impressions,clicks"]
    rng = np.random.default_rng(0)
    for bucket in ("control", "test"):
        for u in range(300):
            for day in range(3):
                m = int(rng.integers(1, 8))
                lines.append(f"{bucket},{bucket}-{u},{day},{m},{int(rng.binomial(m, 0.1))}")
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    rc = main(["abtest", "analyze", "--input", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "r.json"),
               "--report-dir", str(tmp_path / "report"), "--title", "From logs"])
    assert rc == 0
    assert "From logs" in (tmp_path / "report" / "report.html").read_text()
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    assert document["buckets"]["control"]["n"] == 300 and len(document["per_day"]) == 3
