"""Checks of a finished build: every row accounted for (job counters and stats.json), no broken
input file, not everything (nor a whole file) rejected."""
from __future__ import annotations

import json

from adpush_core.errors import UserError


def counts_from_metrics(result) -> dict | None:
    """The job's row accounting from its Beam counters (committed where the runner has them):
    ``{"lines_read", "header_lines", "rejected", "written", "label_events", "side_table_rows",
    "rejected_per_reason"}``; None when the runner reports no metrics."""
    from apache_beam.metrics.metric import MetricsFilter

    from beam_pipelines.dead_letter import METRICS_NAMESPACE
    from beam_pipelines.parse_lines import HEADER_LINES, LABEL_EVENTS, LINES_READ, SIDE_TABLE_ROWS

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics: only stats.json is checked
        return None
    by_name: dict = {}
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        by_name[c.key.metric.name] = by_name.get(c.key.metric.name, 0) + int(value or 0)
    per_reason = {n.removeprefix("rejected_"): v for n, v in sorted(by_name.items()) if n.startswith("rejected_")}
    return {
        "lines_read": by_name.get(LINES_READ, 0),
        "header_lines": by_name.get(HEADER_LINES, 0),
        "rejected": sum(per_reason.values()),
        "written": sum(v for n, v in by_name.items() if n.endswith("_written")),
        "label_events": by_name.get(LABEL_EVENTS, 0),
        "side_table_rows": by_name.get(SIDE_TABLE_ROWS, 0),
        "rejected_per_reason": per_reason,
    }


ACCOUNTING = ("header_lines", "rejected", "written", "label_events", "side_table_rows")


def check_rows_conserved(counts: dict, what: str) -> None:
    """Raise UserError unless every line read is a header, a dead letter, an example written, a
    label event or a side-table row (``counts`` as counts_from_metrics or stats.json's
    ``rows_accounting``). Guards against a runner or a step dropping rows silently; it needs
    only counters, so it holds for gs:// outputs and at any scale."""
    accounted = sum(counts[k] for k in ACCOUNTING)
    if counts["lines_read"] != accounted:
        detail = ", ".join(f"{k} {counts[k]}" for k in ACCOUNTING)
        raise UserError(f"build-data lost {counts['lines_read'] - accounted} rows ({what}: read "
                        f"{counts['lines_read']} lines = {detail} does not add up). The output is "
                        "incomplete: rerun it (the default in-memory FnApiRunner) and report the runner "
                        "options used.")


def check_build(source: str, stats: dict, counts: dict | None, out: str) -> None:
    """Every check of a finished build: rows conserved (by the counters and by stats.json), no
    broken input file, not everything (nor a whole file) rejected."""
    from beam_pipelines.dead_letter import FILE_REASONS

    if counts is not None:
        check_rows_conserved(counts, "job counters")
    check_rows_conserved(stats["rows_accounting"], "stats.json")
    per_reason = stats["rows_rejected"]["per_reason"]
    broken = [f for f in stats["rows_rejected"]["files"] if f.split("/")[-1].rsplit("-", 3)[0] in FILE_REASONS]
    if broken:
        raise UserError("build-data: broken input file(s): " + "; ".join(_broken_files(out, broken))
                        + " (the lines before the damage were read; fix or re-upload the file)")
    top = ", ".join(f"{r} {n}" for r, n in sorted(per_reason.items(), key=lambda kv: -kv[1])[:3])
    data_lines = stats["rows_accounting"]["lines_read"] - stats["rows_accounting"]["header_lines"]
    if data_lines and stats["rows_accounting"]["rejected"] == data_lines:
        raise UserError(f"build-data: all {data_lines} rows of --source {source} were rejected ({top}); "
                        "is the input in this source's layout? (README: beam_pipelines, sources)")
    whole = [path for path, t in stats["per_file"].items()
             if t["lines"] - t["header"] > 0 and t["rejected"] == t["lines"] - t["header"]]
    if whole:
        raise UserError(f"build-data: every row of {', '.join(whole)} was rejected ({top}); is it in the "
                        f"{source} layout?")


def _broken_files(out: str, dead_letter_files) -> list[str]:
    """``<input> is <reason> after line N`` for each dead letter of a broken-file reason."""
    from apache_beam.io.filesystems import FileSystems

    found = []
    for relative in dead_letter_files:
        with FileSystems.open(FileSystems.join(out, relative)) as fh:
            for line in fh.read().decode("utf-8").splitlines():
                d = json.loads(line)
                found.append(f"{d['file']} is {d['reason']} after line {d['line_number'] - 1}")
    return sorted(found)
