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


def _row(lift_factor: float, seed: int = 0, n: int = 4000, pre: bool = False):
    """A comparison with a true relative lift (× lift_factor), optionally with a pre-period."""
    rng = np.random.default_rng(seed)
    stats = []
    for factor in (1.0, lift_factor):
        theta = rng.beta(2, 40, n)
        m, m_pre = rng.poisson(60, n), rng.poisson(60, n)
        extra = {"pre_impressions": m_pre, "pre_clicks": rng.binomial(m_pre, theta)} if pre else {}
        stats.append(SufficientStats.from_arrays(m, rng.binomial(m, np.clip(theta * factor, 0, 1)), **extra))
    return compare("base", stats[0], "test", stats[1]).to_dict()


def test_significant_lifts_are_shaded_by_direction():
    from abtest.report import cell_classes, report_columns, table_html

    up, down, flat = _row(1.2, seed=1), _row(0.8, seed=2), _row(1.0, seed=3)
    assert up["significant"] and down["significant"] and not flat["significant"]
    assert up["relative_lift"] > 0 > down["relative_lift"]
    classes = cell_classes([up, down, flat])
    lift_col = report_columns([up])
    at = lift_col.index("relative lift [CI]")
    assert [row[at] for row in classes] == ["num up", "num down", "num"]
    page = table_html([up, down, flat])
    assert page.count('class="num up"') == 3 and page.count('class="num down"') == 3  # lift, p, significant


def test_p_value_underflow_and_cuped_columns():
    from abtest.report import CUPED_COLUMNS, format_p, report_columns, table_rows

    assert format_p(0.0) == "< 1e-16" and format_p(1e-300) == "< 1e-16"
    assert format_p(3.6e-07) == "3.6e-07" and format_p(0.0188) == "0.0188" and format_p(None) == "n/a"
    with_pre = _row(1.05, seed=4, pre=True)
    columns = report_columns([with_pre])
    assert columns[columns.index("p (delta)") + 1: columns.index("p (delta)") + 4] == CUPED_COLUMNS
    cells = dict(zip(columns, table_rows([with_pre])[0]))
    assert cells["variance reduction"] == f"{100 * with_pre['variance_reduction_cuped']:.1f} %"
    assert cells["CUPED lift [CI]"].startswith(f"{100 * with_pre['relative_lift_cuped']:+.2f} % [")
    assert report_columns([_row(1.05, seed=4)]) == COLUMNS


def test_legends_sit_outside_the_axes():
    from abtest.report import _pyplot, cumulative_figure, forest_figure

    comparisons, per_day = _experiment(seed=3)
    rows = [c.to_dict() for c in comparisons] + [_row(1.05, seed=5, pre=True)]
    for fig in (forest_figure(rows), cumulative_figure([c.to_dict() for c in per_day])):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        legend = ax.get_legend().get_window_extent(renderer)
        axes = ax.get_window_extent(renderer)
        assert not legend.overlaps(axes), (legend, axes)
        # and inside the figure (not cut off)
        assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)
        _pyplot().close(fig)
