"""``adpush export --gate``: thresholds, no worse than the served version, nothing written on
failure, and the validation figures read from RUN/export_info.json alone."""
from __future__ import annotations

import json
import os

import pytest

from adpush.cli import main
from serving.errors import ExportError
from serving.gate import METRICS_FILE, Threshold, check_gate, parse_gate, validation_metrics


def test_parse_gate():
    assert parse_gate("auc>=0.6, logloss<=0.25") == [Threshold("auc", ">=", 0.6), Threshold("logloss", "<=", 0.25)]
    assert parse_gate(["click.auc>=0.5", "loss<=1e-1"]) == [Threshold("click.auc", ">=", 0.5),
                                                             Threshold("loss", "<=", 0.1)]
    for bad in ("auc>0.6", "auc>=", "auc>=nan", ">=0.5", "auc>=0.5,auc>=0.6", ""):
        with pytest.raises(ExportError):
            parse_gate(bad)


def test_check_gate_names_metric_values_and_threshold():
    gate = parse_gate("auc>=0.6,logloss<=0.25")
    first = check_gate({"auc": 0.62, "logloss": 0.21}, gate)
    assert first.passed and "auc 0.6200 (threshold >= 0.6; no version is served yet)" in first.lines
    worse = check_gate({"auc": 0.61, "logloss": 0.21}, gate, (3, {"auc": 0.62, "logloss": 0.22}))
    assert not worse.passed
    assert worse.failures == ["auc 0.6100 (threshold >= 0.6; served version 3: 0.6200): worse than served version 3"]
    below = check_gate({"auc": 0.55, "logloss": 0.3}, gate, (3, {"auc": 0.5, "logloss": 0.2}))
    assert below.failures == [
        "auc 0.5500 (threshold >= 0.6; served version 3: 0.5000): below the threshold",
        "logloss 0.3000 (threshold <= 0.25; served version 3: 0.2000): above the threshold and worse than "
        "served version 3"]
    assert check_gate({"auc": 0.619, "logloss": 0.2}, gate, (3, {"auc": 0.62, "logloss": 0.2}), tolerance=0.002).passed
    missing = check_gate({"auc": 0.7}, gate)
    assert missing.failures == ["logloss: the candidate has no validation value for it (its metrics: auc)"]
    unknown_baseline = check_gate({"auc": 0.7, "logloss": 0.1}, gate, (2, None))
    assert not unknown_baseline.passed and f"served version 2 has no {METRICS_FILE}" in unknown_baseline.failures[0]


def test_validation_metrics_are_export_infos_and_nothing_else(tmp_path):
    # The training code writes the exported epoch's figures; serving reads no family's layout.
    with pytest.raises(ExportError, match="export_info.json not found"):
        validation_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"valid": {"auc": 0.9}}))
    (tmp_path / "export_info.json").write_text(json.dumps({"saved_model": "export/saved_model"}))
    with pytest.raises(ExportError, match="has no validation figures"):
        validation_metrics(tmp_path)
    (tmp_path / "export_info.json").write_text(json.dumps({
        "saved_model": "export/saved_model", "family": "cascade/esmm",
        "validation": {"split": "valid", "epoch": 1, "metrics": {"click.auc": 0.51, "loss": 0.59}}}))
    assert validation_metrics(tmp_path) == {"click.auc": 0.51, "loss": 0.59}


def _run(tmp_path, name, model_base, auc):
    run = tmp_path / name
    run.mkdir()
    os.symlink(model_base["keyword_ctr_path"], run / "saved_model")
    (run / "export_info.json").write_text(json.dumps({
        "saved_model": "saved_model", "family": "toy/keyword_ctr",
        "validation": {"split": "valid", "epoch": 0, "metrics": {"auc": auc, "logloss": 0.2}}}))
    return run


def _listing(base):
    return sorted(str(p.relative_to(base)) for p in base.rglob("*"))


def test_export_gate_publishes_only_what_is_no_worse_and_writes_nothing_otherwise(tmp_path, model_base, capsys):
    base = tmp_path / "models"
    export = ["export", "--model-base-path", str(base), "--model-name", "kw", "--gate", "auc>=0.6"]
    assert main(export + ["--run-dir", str(_run(tmp_path, "first", model_base, 0.65))]) == 0
    assert "gate passed (validation split): auc 0.6500 (threshold >= 0.6; no version is served yet)" \
        in capsys.readouterr().out
    published = json.loads((base / "kw" / "1" / METRICS_FILE).read_text())
    assert published["metrics"] == {"auc": 0.65, "logloss": 0.2} and published["split"] == "valid"
    before = _listing(base)

    # Worse than the served version 1: refused, both values and the threshold named, nothing written.
    assert main(export + ["--run-dir", str(_run(tmp_path, "worse", model_base, 0.64))]) == 2
    err = capsys.readouterr().err
    assert "'kw' from" in err and "is not published (nothing was written)" in err
    assert "auc 0.6400 (threshold >= 0.6; served version 1: 0.6500): worse than served version 1" in err
    # Below the threshold.
    assert main(export + ["--run-dir", str(_run(tmp_path, "low", model_base, 0.55))]) == 2
    assert "auc 0.5500 (threshold >= 0.6; served version 1: 0.6500): below the threshold and worse" \
        in capsys.readouterr().err
    assert _listing(base) == before  # no version, no temporary directory

    # As good as the served version: published as version 2, which carries its own metrics.
    assert main(export + ["--run-dir", str(_run(tmp_path, "same", model_base, 0.65))]) == 0
    assert sorted(os.listdir(base / "kw")) == ["1", "2"]
    assert (base / "kw" / "2" / METRICS_FILE).is_file()
    # A served version without metrics (published before the gate existed) cannot be beaten.
    os.remove(base / "kw" / "2" / METRICS_FILE)
    assert main(export + ["--run-dir", str(_run(tmp_path, "better", model_base, 0.9))]) == 2
    assert f"served version 2 has no {METRICS_FILE}" in capsys.readouterr().err
    # Without --gate the export is not gated (and still records the metrics).
    assert main(["export", "--model-base-path", str(base), "--model-name", "kw", "--run-dir",
                 str(tmp_path / "worse")]) == 0
    assert json.loads((base / "kw" / "3" / METRICS_FILE).read_text())["metrics"]["auc"] == 0.64
