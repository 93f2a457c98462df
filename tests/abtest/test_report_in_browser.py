"""The A/B report opens in headless Chromium: its table and embedded plots render."""
from __future__ import annotations

import re

import numpy as np
import pytest

from abtest.simulator.policies import OracleScorer
from abtest.simulator.scenario import load_scenario, run_scenario
from abtest.world import World, WorldConfig
from tests.browser import dump_dom, screenshot


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    world = World.build(WorldConfig.tiny().replace(n_users=2000), seed=4)
    scenario = load_scenario("001")
    for experiment in scenario.experiments:
        experiment["displays"] = 500_000
    scenario.defaults.update(days=3, slots=8, pre_days=3)
    out = tmp_path_factory.mktemp("report")
    run_scenario(world, scenario, OracleScorer(world), 4, out, progress=False)
    return out


def test_report_table_renders_in_the_dom(report_dir):
    dom = dump_dom(report_dir / "report.html")
    rows = re.findall(r"<tr[ >].*?</tr>", dom, flags=re.S)
    assert len(rows) == 6  # header + the five experiments of 001 Table 2
    for bucket in ("No.1 PSPSS", "No.2 NSPSS", "No.3 Highlight SPs", "No.4 Add 3 SPs",
                   "No.5 Add 1 SP"):
        assert bucket in dom
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', dom)
    assert len(images) == 2


#: Injected into a copy of the report (the report itself has no script): for each cell, the
#: number of line boxes its text takes in Chromium's layout.
MEASURE = """<script>
const lines = [...document.querySelectorAll("td.num")].map(td => {
  const range = document.createRange(); range.selectNodeContents(td);
  const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
  return [td.textContent, tops.size];
});
document.body.insertAdjacentHTML("beforeend", "<pre id=measure>" + JSON.stringify(lines) + "</pre>");
</script>"""


def test_numbers_do_not_wrap_in_the_browser(report_dir, tmp_path):
    import html
    import json

    page = (report_dir / "report.html").read_text().replace("</body>", MEASURE + "</body>")
    (tmp_path / "measured.html").write_text(page)
    dom = dump_dom(tmp_path / "measured.html")
    measured = json.loads(html.unescape(re.search(r"<pre id=\"measure\">(.*?)</pre>", dom, flags=re.S).group(1)))
    lift_cells = [(text, n) for text, n in measured if "[" in text]
    assert len(lift_cells) == 10  # unadjusted and CUPED lift [CI] of five experiments
    assert all(n == 1 for _, n in measured), [m for m in measured if m[1] != 1]


def test_report_plots_are_drawn_in_the_screenshot(report_dir, tmp_path):
    import matplotlib.image as mpimg

    png = screenshot(report_dir / "report.html", tmp_path / "shot.png")
    pixels = mpimg.imread(png)[..., :3]
    # matplotlib's default blue (#1f77b4) marks the cumulative-lift line; the forest plot's
    # points are coloured; a blank or broken image leaves neither.
    blue = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.06, axis=-1)
    assert blue.sum() > 200
    lower_half = pixels[pixels.shape[0] // 4:]
    assert (lower_half.std(axis=-1) > 0.1).sum() > 2000  # coloured (non-grey) plot pixels
