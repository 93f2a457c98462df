"""The export gate: publish a new version only if its validation metrics clear thresholds and are
no worse than the version being served (TFX's Evaluator "blessing" + Pusher, for one run dir).

* ``parse_gate("auc>=0.6,logloss<=0.25")`` → thresholds; the operator gives the direction
  (``>=``: higher is better, ``<=``: lower is better).
* ``served_metrics(BASE, NAME)`` → (version, metrics) of the version TF Serving serves by default
  (the highest numeric one, ``model_version_policy { latest { num_versions: 1 } }``), read from its
  ``assets.extra/validation_metrics.json`` — which ``export_run`` writes into every version it
  publishes, so the next export has something to compare with.
* ``check_gate(candidate, thresholds, served)`` → a ``GateResult`` whose ``lines`` say, per
  metric, the candidate's value, the served version's value and the threshold; ``GateError``
  (an ``ExportError``) carries them when the gate fails, and nothing has been written by then.

The candidate's metrics are ``validation.metrics`` of ``RUN/export_info.json``, which the training
code writes (validation split only, the epoch whose weights it exported; the test split is never
used for a choice). Metric names are flat, as the family writes them: e.g. ``auc``, ``logloss``
for the selling-point model, ``click.auc``, ``conversion.auc``, ``loss`` for the CTR→CVR one.
"""
from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from serving.errors import ExportError
from serving.export import export_run, read_export_info
from serving.publish import existing_versions

METRICS_FILE = "assets.extra/validation_metrics.json"
_THRESHOLD_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=)\s*([-+0-9.eE]+)\s*")
_OPS = {">=": operator.ge, "<=": operator.le}


class GateError(ExportError):
    """The candidate did not clear the gate; the message lists every failing metric."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str          # ">=" (higher is better) or "<="
    value: float

    @property
    def higher_is_better(self) -> bool:
        return self.op == ">="

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_gate(texts: str | Sequence[str]) -> list[Threshold]:
    """``"auc>=0.6,logloss<=0.25"`` (or several such strings) → thresholds, one per metric."""
    if isinstance(texts, str):
        texts = [texts]
    out: dict[str, Threshold] = {}
    for text in texts:
        for part in filter(None, (p.strip() for p in text.split(","))):
            m = _THRESHOLD_RE.fullmatch(part)
            value = None
            if m:
                try:
                    value = float(m.group(3))
                except ValueError:
                    value = None
            if m is None or value is None or not math.isfinite(value):
                raise ExportError(f"--gate {part!r}: expected METRIC>=VALUE or METRIC<=VALUE, e.g. auc>=0.6")
            if m.group(1) in out:
                raise ExportError(f"--gate names {m.group(1)!r} twice")
            out[m.group(1)] = Threshold(m.group(1), m.group(2), value)
    if not out:
        raise ExportError("--gate needs at least one METRIC>=VALUE or METRIC<=VALUE")
    return list(out.values())


def served_metrics(base_path: str | Path, model_name: str) -> tuple[int | None, dict | None]:
    """(version, metrics) of the highest version under BASE/NAME; (None, None) when there is none,
    (version, None) when that version was published without ``assets.extra/validation_metrics.json``."""
    model_dir = Path(base_path) / model_name
    versions = existing_versions(model_dir)
    if not versions:
        return None, None
    path = model_dir / str(versions[-1]) / METRICS_FILE
    if not path.is_file():
        return versions[-1], None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: unreadable ({err}); the served version's metrics cannot be compared") from err
    return versions[-1], dict(document.get("metrics", {}))


@dataclass
class GateResult:
    passed: bool
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def check_gate(candidate: Mapping[str, float], thresholds: Sequence[Threshold],
               served: tuple[int | None, Mapping[str, float] | None] = (None, None),
               tolerance: float = 0.0) -> GateResult:
    """Does the candidate clear every threshold and stay no worse than the served version?

    Args:
        candidate: the new version's validation metrics.
        served: ``served_metrics(...)``; a served version without metrics fails the gate (there
            is no evidence the candidate is no worse).
        tolerance: how much worse than the served value still counts as "no worse" (absolute).
    """
    version, baseline = served
    result = GateResult(passed=True)
    for t in thresholds:
        value = candidate.get(t.metric)
        if value is None or not math.isfinite(value):
            known = ", ".join(sorted(candidate)) or "none"
            result.failures.append(f"{t.metric}: the candidate has no validation value for it "
                                   f"(its metrics: {known})")
            continue
        reasons = []
        if not _OPS[t.op](value, t.value):
            reasons.append(f"{'below' if t.higher_is_better else 'above'} the threshold")
        if version is None:
            compared = "no version is served yet"
        elif baseline is None:
            compared = f"served version {version} has no {METRICS_FILE}"
            reasons.append("nothing to show it is no worse than the served version")
        elif t.metric not in baseline:
            compared = f"served version {version} has no {t.metric}"
            reasons.append("nothing to show it is no worse than the served version")
        else:
            served_value = float(baseline[t.metric])
            compared = f"served version {version}: {served_value:.4f}"
            worse = value < served_value - tolerance if t.higher_is_better else value > served_value + tolerance
            if worse:
                reasons.append(f"worse than served version {version}")
        line = f"{t.metric} {value:.4f} (threshold {t.op} {t.value:g}; {compared})"
        if reasons:
            result.failures.append(f"{line}: {' and '.join(reasons)}")
        else:
            result.lines.append(line)
    result.passed = not result.failures
    return result


def validation_metrics(run_dir: str | Path) -> dict[str, float]:
    """``RUN/export_info.json`` → ``validation.metrics``, flat ``{name: value}``."""
    info = read_export_info(run_dir)
    section = info.get("validation") or {}
    metrics = section.get("metrics") if isinstance(section, dict) else None
    if not metrics:
        raise ExportError(f"{Path(run_dir) / 'export_info.json'} has no validation figures "
                          f"('validation.metrics'): the run had no validation split")
    return {name: float(value) for name, value in metrics.items()}


def metrics_document(metrics: Mapping[str, float], source: str) -> bytes:
    """The ``assets.extra/validation_metrics.json`` of a published version."""
    return (json.dumps({"split": "valid", "source": source, "metrics": dict(sorted(metrics.items()))},
                       indent=2) + "\n").encode("utf-8")


def gated_export(run_dir: str | Path, base_path: str | Path, model_name: str,
                 thresholds: Sequence[Threshold] | None = None, *, version: int | None = None,
                 tolerance: float = 0.0) -> tuple[Path, str]:
    """Publish RUN's SavedModel as BASE/NAME/<version>/ (``export.export_run``), gated when
    ``thresholds`` are given; the version carries its validation metrics in
    ``assets.extra/validation_metrics.json``.

    The gate runs before anything is written: on failure ``GateError`` lists every failing metric
    with the candidate's value, the served version's and the threshold.

    Returns:
        (the published version's path, one line saying what the gate decided).
    """
    run_dir = Path(run_dir)
    try:
        candidate = validation_metrics(run_dir)
    except ExportError as err:
        if thresholds:
            raise GateError(f"export gate for {model_name!r}: {err}") from err
        candidate = None
    if thresholds:
        result = check_gate(candidate, thresholds, served_metrics(base_path, model_name), tolerance)
        if not result.passed:
            raise GateError(f"export gate: {model_name!r} from {run_dir} is not published (nothing was "
                            f"written):\n  " + "\n  ".join(result.failures + result.lines))
        summary = "gate passed (validation split): " + "; ".join(result.lines)
    else:
        summary = "no gate"
    extra = {METRICS_FILE: metrics_document(candidate, str(run_dir))} if candidate else None
    return export_run(run_dir, base_path, model_name, version=version, extra_files=extra), summary
