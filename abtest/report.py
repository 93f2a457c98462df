"""A/B significance report as Markdown, self-contained HTML (plots as embedded base64 PNG) and JSON.

The table follows 001's Table 2 (base bucket, test bucket, relative lift, p, total displays) with
the columns ABTEST_STATS.md §5 suggests added: users, clicks, CTRs, lift CI, the naive p beside
the delta-method p, SRM p, MDE, and significance at α and at a practical threshold. When the
buckets carry pre-period statistics, the CUPED-adjusted lift, its CI, p and the variance
reduction stand beside the unadjusted figures (``report_columns``).

A significant lift is shaded by direction (green up, red down), as GrowthBook colours a p-value
in the preferred or the opposite direction.

``write_report(comparisons, per_day, out_dir=…, title=…)`` takes ``abtest.stats.Comparison``
objects (or their ``to_dict()`` dicts), so ``adpush abtest analyze`` and the traffic simulator
produce the same report.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

from abtest.stats.comparison import Comparison

COLUMNS = ("base bucket", "test bucket", "users (base / test)", "displays", "clicks (base / test)",
           "CTR base", "CTR test", "relative lift [CI]", "p (delta)", "p (naive)", "p (Holm / BH)",
           "SRM p", "MDE (80 %)", "design effect", "significant (α / practical)")
#: Shown after "p (delta)" when the comparisons have CUPED figures.
CUPED_COLUMNS = ("CUPED lift [CI]", "p (CUPED)", "variance reduction")
#: p-values below this print as "< 1e-16": the normal tail is not meaningful that far out (and
#: a naive computation underflows to 0).
P_FLOOR = 1e-16


def _as_dict(c: Comparison | Mapping) -> dict:
    return c.to_dict() if isinstance(c, Comparison) else dict(c)


def _pct(value, digits: int = 2, sign: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:{'+' if sign else ''}.{digits}f} %"


def format_p(value) -> str:
    """A p-value for people: 4 decimals, scientific below 1e-4, "< 1e-16" below ``P_FLOOR``."""
    if value is None:
        return "n/a"
    if value < P_FLOOR:
        return "< 1e-16"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


_p = format_p


def _lift_ci(lift, low, high) -> str:
    """``+3.99 % [+0.59, +7.39]``: the CI in the lift's unit, without repeating it."""
    if lift is None:
        return "n/a"

    def bound(value) -> str:
        return "n/a" if value is None else f"{100 * value:+.2f}"

    return f"{_pct(lift)} [{bound(low)}, {bound(high)}]"


def has_cuped(comparisons: Sequence[Mapping]) -> bool:
    return any(c.get("relative_lift_cuped") is not None for c in comparisons)


def report_columns(comparisons: Sequence[Mapping]) -> tuple[str, ...]:
    """``COLUMNS``, with ``CUPED_COLUMNS`` after "p (delta)" when any comparison has CUPED."""
    if not has_cuped(comparisons):
        return COLUMNS
    at = COLUMNS.index("p (delta)") + 1
    return COLUMNS[:at] + CUPED_COLUMNS + COLUMNS[at:]


def direction_class(significant, lift) -> str:
    """"up" / "down" for a significant lift above / below 0, else ""."""
    if not significant or lift is None:
        return ""
    return "up" if lift > 0 else "down"


def console_line(c: Mapping, name_width: int = 22) -> str:
    """One comparison on one console line: lift [95 % CI], p, and the CUPED figures when present
    (``adpush run``'s summary, ``abtest run`` and ``abtest analyze`` print these)."""
    def pct(x) -> str:
        return "n/a" if x is None else f"{100 * x:+6.2f}%"

    line = (f"{c['control']:<{name_width}} -> {c['treatment']:<{name_width}} {pct(c['relative_lift'])} "
            f"[{pct(c['ci_low'])}, {pct(c['ci_high'])}]  p={format_p(c['p_value'])}")
    if c.get("relative_lift_cuped") is not None:
        line += (f"  CUPED {pct(c['relative_lift_cuped'])} [{pct(c['ci_low_cuped'])}, {pct(c['ci_high_cuped'])}]"
                 f"  p={format_p(c['p_value_cuped'])}, variance -{100 * c['variance_reduction_cuped']:.0f}%")
    return line


def _count(value) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def table_rows(comparisons: Sequence[Mapping]) -> list[list[str]]:
    """One list of cell texts per comparison, in ``report_columns(comparisons)`` order."""
    rows = []
    cuped = has_cuped(comparisons)
    for c in comparisons:
        srm = _p(c["srm_p"]) + (" ⚠ SRM" if c.get("srm_flag") else "")
        row = [
            str(c["control"]), str(c["treatment"]),
            f"{_count(c['users_control'])} / {_count(c['users_treatment'])}",
            _count((c["impressions_control"] or 0) + (c["impressions_treatment"] or 0)),
            f"{_count(c['clicks_control'])} / {_count(c['clicks_treatment'])}",
            _pct(c["ctr_control"], 3, sign=False), _pct(c["ctr_treatment"], 3, sign=False),
            _lift_ci(c["relative_lift"], c["ci_low"], c["ci_high"]),
            _p(c["p_value"]),
        ]
        if cuped:
            reduction = c.get("variance_reduction_cuped")
            row += [_lift_ci(c.get("relative_lift_cuped"), c.get("ci_low_cuped"), c.get("ci_high_cuped")),
                    _p(c.get("p_value_cuped")),
                    "n/a" if reduction is None else f"{100 * reduction:.1f} %"]
        row += [
            _p(c["p_value_naive"]), f"{_p(c.get('p_value_holm'))} / {_p(c.get('p_value_bh'))}",
            srm, _pct(c["mde"], sign=False),
            "n/a" if c.get("design_effect") is None else f"{c['design_effect']:.2f}",
            f"{_yes_no(c.get('significant', False))} / {_yes_no(c.get('significant_practical', False))}",
        ]
        rows.append(row)
    return rows


def cell_classes(comparisons: Sequence[Mapping]) -> list[list[str]]:
    """CSS class per cell of ``table_rows``: lift and p cells shaded by significant direction."""
    columns = report_columns(comparisons)
    out = []
    for c in comparisons:
        plain = direction_class(c.get("significant"), c.get("relative_lift"))
        adjusted = direction_class(c.get("significant_cuped"), c.get("relative_lift_cuped"))
        shade = {"relative lift [CI]": plain, "p (delta)": plain, "significant (α / practical)": plain,
                 "CUPED lift [CI]": adjusted, "p (CUPED)": adjusted}
        out.append([" ".join(filter(None, ("num" if i > 1 else "", shade.get(col, ""))))
                    for i, col in enumerate(columns)])
    return out


def _notes(comparisons: Sequence[Mapping]) -> list[str]:
    if not comparisons:
        return ["No comparisons."]
    first = comparisons[0]
    statistic = first.get("test_statistic") or "z = relative lift / its delta-method SE"
    notes = [
        f"p (delta) and the relative-lift CI come from one user-level delta-method statistic, "
        f"{statistic}, so p < α exactly when the CI excludes 0. p (naive): pooled per-impression "
        f"z-test, anti-conservative when users differ in CTR — shown for comparison only.",
        f"Relative lift CI: {100 * (1 - first['alpha']):.0f} % ({first['ci_method']} method). "
        f"Significant at α = {first['alpha']}: p (delta) < α; shaded green for a lift up, red for "
        f"a lift down. Practical: also the whole CI above "
        f"{_pct(first['practical_threshold'])} (001: +0.3 %).",
        "SRM: χ² of user counts against the configured split, flagged at p < 0.001. "
        "MDE: relative lift detectable with 80 % power at this sample. Design effect: delta-method "
        "variance over the per-impression binomial variance (how much the naive test understates it).",
        "p (Holm / BH): the p (delta) adjusted across the comparisons of this report by Holm "
        "(family-wise error) and by Benjamini–Hochberg (false discovery rate).",
    ]
    if has_cuped(comparisons):
        notes.append("CUPED: the lift adjusted by each user's pre-period clicks and impressions "
                     "(Deng et al. 2013; gbstats' regression-adjusted ratio statistic): CTR − θ·pre-period "
                     "CTR, θ pooled over both buckets, delta-method SE; p (CUPED) = the z of the adjusted "
                     "lift over its SE, so it agrees with its CI. Variance reduction: 1 − Var(adjusted "
                     "lift) / Var(unadjusted lift).")
    if any(c.get("sequential") for c in comparisons):
        notes.append("Sequential mode: always-valid p-values and confidence sequences "
                     "(GrowthBook / Waudby-Smith et al.) are in the JSON and drawn in the forest plot.")
    flagged = [f"{c['control']} vs {c['treatment']}" for c in comparisons if c.get("srm_flag")]
    if flagged:
        notes.insert(0, f"⚠ Sample-ratio mismatch in {', '.join(flagged)}: the split is not what was "
                        f"configured; do not trust these results before finding the cause.")
    return notes


# --- plots -------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    _pyplot().close(fig)
    return buffer.getvalue()


#: Colours of a significant lift up / down, and of a lift whose CI covers 0.
UP, DOWN, NEUTRAL = "tab:green", "tab:red", "tab:blue"


def _colour(significant, lift) -> str:
    return {"up": UP, "down": DOWN}.get(direction_class(significant, lift), NEUTRAL)


def forest_plot(comparisons: Sequence[Mapping]) -> bytes:
    """``forest_figure`` as PNG bytes."""
    return _png(forest_figure(comparisons))


def cumulative_lift_plot(per_day: Sequence[Mapping]) -> bytes:
    """``cumulative_figure`` as PNG bytes."""
    return _png(cumulative_figure(per_day))


def forest_figure(comparisons: Sequence[Mapping]):
    """Relative lift with CI per comparison (and the CUPED-adjusted one, and the confidence
    sequence, when present). The legend sits below the axes, never over an interval."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    cuped = has_cuped(comparisons)
    fig, ax = plt.subplots(figsize=(7.5, 0.7 * len(comparisons) + 2.2))
    labels = [f"{c['control']} → {c['treatment']}" for c in comparisons]
    offset = 0.17 if cuped else 0.0
    for y, c in enumerate(comparisons):
        lift = c["relative_lift"]
        if lift is None:
            continue
        if c.get("ci_low_sequential") is not None:
            ax.plot([100 * c["ci_low_sequential"], 100 * c["ci_high_sequential"]], [y - offset] * 2,
                    color="tab:orange", linewidth=6, alpha=0.35, solid_capstyle="butt")
        low = c["ci_low"] if c["ci_low"] is not None else lift
        high = c["ci_high"] if c["ci_high"] is not None else lift
        ax.errorbar([100 * lift], [y - offset], xerr=[[100 * (lift - low)], [100 * (high - lift)]], fmt="o",
                    color=_colour(c.get("significant"), lift), capsize=4)
        adjusted = c.get("relative_lift_cuped")
        if adjusted is not None:
            ax.errorbar([100 * adjusted], [y + offset],
                        xerr=[[100 * (adjusted - c["ci_low_cuped"])], [100 * (c["ci_high_cuped"] - adjusted)]],
                        fmt="s", mfc="white", color=_colour(c.get("significant_cuped"), adjusted), capsize=4)
    ax.axvline(0, color="grey", linewidth=1)
    handles = [Line2D([], [], color=UP, marker="o", label="significant lift up"),
               Line2D([], [], color=DOWN, marker="o", label="significant lift down"),
               Line2D([], [], color=NEUTRAL, marker="o", label="CI covers 0")]
    if cuped:
        handles.append(Line2D([], [], color="grey", marker="s", mfc="white", linestyle="none",
                              label="CUPED-adjusted (below each unadjusted)"))
    if any(c.get("ci_low_sequential") is not None for c in comparisons):
        handles.append(Line2D([], [], color="tab:orange", linewidth=6, alpha=0.35, label="confidence sequence"))
    if comparisons:
        ax.axvline(100 * comparisons[0]["practical_threshold"], color="grey", linestyle=":", linewidth=1)
        handles.append(Line2D([], [], color="grey", linestyle=":", label="practical threshold"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.3 / max(len(comparisons), 1)),
              ncol=2, fontsize=8, frameon=False)
    ax.set_yticks(range(len(comparisons)), labels)
    ax.set_ylim(len(comparisons) - 0.5, -0.5)
    ax.set_xlabel("relative CTR lift (%)")
    ax.set_title("Relative lift with confidence intervals")
    fig.tight_layout()
    return fig


def cumulative_figure(per_day: Sequence[Mapping]):
    """Cumulative relative lift (and CI band) by day, one line per comparison. The legend sits
    to the right of the axes, never over a band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4))
    series: dict[tuple, list[Mapping]] = {}
    for c in per_day:
        series.setdefault((c["control"], c["treatment"]), []).append(c)
    for (control, treatment), rows in series.items():
        rows = sorted((r for r in rows if r["relative_lift"] is not None), key=lambda r: r["day"])
        days = [r["day"] for r in rows]
        line, = ax.plot(days, [100 * r["relative_lift"] for r in rows], marker="o", label=f"{control} → {treatment}")
        if all(r["ci_low"] is not None and r["ci_high"] is not None for r in rows):
            ax.fill_between(days, [100 * r["ci_low"] for r in rows], [100 * r["ci_high"] for r in rows],
                            color=line.get_color(), alpha=0.15)
        if all(r.get("ci_low_sequential") is not None for r in rows):
            ax.plot(days, [100 * r["ci_low_sequential"] for r in rows], color=line.get_color(), linestyle="--", linewidth=1)
            ax.plot(days, [100 * r["ci_high_sequential"] for r in rows], color=line.get_color(), linestyle="--", linewidth=1)
    ax.axhline(0, color="grey", linewidth=1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("day (cumulative through)")
    ax.set_ylabel("relative CTR lift (%)")
    ax.set_title("Cumulative lift per day (band: 95 % CI)")
    if series:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


# --- documents ---------------------------------------------------------------------------------

def render_markdown(title: str, comparisons: Sequence[Mapping], plot_files: Sequence[str] = ()) -> str:
    columns = report_columns(comparisons)
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table_rows(comparisons):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines += [""] + [f"- {note}" for note in _notes(comparisons)] + [""]
    lines += [f"![{name}]({name})" for name in plot_files]
    return "\n".join(lines) + "\n"


PAGE_CSS = """body { font-family: sans-serif; margin: 1.5em; }
.table-scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.76em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.4em; text-align: right; }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; }
td.up { background: #e3f4e3; }
td.down { background: #fbe3e3; }
figure { display: inline-block; margin: 1em; vertical-align: top; }
"""


def figure_html(name: str, png: bytes) -> str:
    """A captioned figure with the PNG embedded as base64 (the page stays self-contained)."""
    esc = html.escape
    return (f'<figure><img alt="{esc(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}"><figcaption>{esc(name)}</figcaption></figure>\n')


def html_page(title: str, body: str, extra_css: str = "") -> str:
    """A self-contained HTML page: title, the shared report style (+ ``extra_css``), ``body``."""
    esc = html.escape
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>\n'
            f"<style>\n{PAGE_CSS}{extra_css}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f"{body}</body></html>\n")


def table_html(comparisons: Sequence[Mapping]) -> str:
    """The comparison table as HTML: numbers never wrap, significant lifts shaded by direction."""
    esc = html.escape
    head = "".join(f"<th>{esc(col)}</th>" for col in report_columns(comparisons))

    def cell(text: str, css: str) -> str:
        return f'<td class="{css}">{esc(text)}</td>' if css else f"<td>{esc(text)}</td>"

    body = "".join("<tr>" + "".join(cell(text, css) for text, css in zip(row, classes)) + "</tr>\n"
                   for row, classes in zip(table_rows(comparisons), cell_classes(comparisons)))
    return (f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead><tbody>\n{body}'
            f"</tbody></table></div>\n")


def render_html(title: str, comparisons: Sequence[Mapping], images: Mapping[str, bytes]) -> str:
    esc = html.escape
    notes = "".join(f"<li>{esc(note)}</li>" for note in _notes(comparisons))
    figures = "".join(figure_html(name, png) for name, png in images.items())
    return html_page(title, f"{table_html(comparisons)}<ul>{notes}</ul>\n{figures}")


def write_report(comparisons: Sequence[Comparison | Mapping], per_day: Sequence[Comparison | Mapping] | None = None,
                 *, out_dir: str | Path, title: str = "A/B test report", extra: Mapping | None = None) -> dict[str, Path]:
    """Write report.md, report.html (self-contained) and report.json into ``out_dir``.

    Args:
        comparisons: overall comparisons (e.g. from ``abtest.stats.compare_all``).
        per_day: cumulative comparisons with ``day`` set (``compare(..., day=d)`` on the users'
            totals through day d); drawn as the cumulative-lift plot.
        extra: more top-level JSON fields (e.g. buckets' sufficient statistics, config, seed).

    Returns:
        {"markdown": path, "html": path, "json": path, plus one path per PNG}.
    """
    rows = [_as_dict(c) for c in comparisons]
    days = [_as_dict(c) for c in (per_day or [])]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {"forest_plot.png": forest_plot(rows)}
    if days:
        images["cumulative_lift.png"] = cumulative_lift_plot(days)
    paths: dict[str, Path] = {}
    for name, png in images.items():
        (out / name).write_bytes(png)
        paths[name] = out / name
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(render_markdown(title, rows, list(images)), encoding="utf-8")
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(title, rows, images), encoding="utf-8")
    document = {"title": title, **(dict(extra) if extra else {}), "comparisons": rows, "per_day": days}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return paths
