"""``adpush export --gate``: thresholds, no worse than the served version, nothing written on
failure, and the validation figures read from either model family's run layout."""
from __future__ import annotations

import json
import os

import pytest

from adpush.cli import main
from adpush_core.errors import UserError
from serving.export import ExportError
from serving.families import validation_metrics
from serving.gate import METRICS_FILE, Threshold, check_gate, parse_gate


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


def test_validation_metrics_of_both_families_layouts(tmp_path):
    # A metrics.json "valid" section (model next to baseline/oracle) wins.
    run = tmp_path / "a"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "valid": {"overall": {"model": {"auc": 0.66, "logloss": 0.2, "n": 100},
                              "baseline": {"auc": 0.64}, "oracle": {"auc": 0.77}}},
        "overall": {"model": {"auc": 0.5}}}))
    (run / "history.json").write_text(json.dumps([{"phase": "main", "valid_auc": 0.1, "valid_logloss": 9}]))
    assert validation_metrics(run) == {"auc": 0.66, "logloss": 0.2}
    # Selling-point runs today: history.json, the best main-phase epoch (never the test split).
    run = tmp_path / "sf"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"split": "test", "overall": {"model": {"auc": 0.9}}}))
    (run / "history.json").write_text(json.dumps([
        {"phase": "pretrain", "valid_auc": 0.99, "valid_logloss": 0.1},
        {"phase": "main", "epoch": 0, "valid_auc": 0.61, "valid_logloss": 0.22},
        {"phase": "main", "epoch": 1, "valid_auc": 0.63, "valid_logloss": 0.21},
        {"phase": "main", "epoch": 2, "valid_auc": 0.60, "valid_logloss": 0.23}]))
    assert validation_metrics(run) == {"auc": 0.63, "logloss": 0.21}
    # With the "kept" mark (min_improvement): the epoch whose weights were kept, not the best
    # AUC nor the lowest logloss (epoch 2 was 5e-5 lower: not better by 1e-4).
    (run / "history.json").write_text(json.dumps([
        {"phase": "main", "epoch": 0, "valid_auc": 0.61, "valid_logloss": 0.2200, "kept": True},
        {"phase": "main", "epoch": 1, "valid_auc": 0.62, "valid_logloss": 0.2100, "kept": True},
        {"phase": "main", "epoch": 2, "valid_auc": 0.64, "valid_logloss": 0.20995, "kept": False},
        {"phase": "main", "epoch": 3, "valid_auc": 0.63, "valid_logloss": 0.2101, "kept": False}]))
    assert validation_metrics(run) == {"auc": 0.62, "logloss": 0.21}
    # Cascade runs: history.json of Keras' per-epoch figures; early stopping restored the lowest
    # val_loss epoch.
    run = tmp_path / "cascade"
    run.mkdir()
    history = {"val_click_auc": [0.52, 0.51], "val_conversion_auc": [0.55, 0.53], "val_loss": [0.58, 0.59],
               "click_auc": [0.6, 0.7]}

    def write_history():
        (run / "history.json").write_text(json.dumps(
            [{"epoch": e, **{k: v[e] for k, v in history.items()}} for e in range(2)]))

    write_history()
    (run / "metrics.json").write_text(json.dumps({"test": {"model": {"click": {"auc": 0.9}}}}))
    (run / "config.json").write_text(json.dumps({"family": "cascade", "train": {"epochs": 3}}))
    assert validation_metrics(run) == {"click.auc": 0.52, "conversion.auc": 0.55, "loss": 0.58}
    (run / "config.json").write_text(json.dumps({"family": "cascade", "train": {"epochs": 2}}))
    assert validation_metrics(run) == {"click.auc": 0.51, "conversion.auc": 0.53, "loss": 0.59}  # ran to the end
    # With the objective early stopping monitors: its lowest epoch, which restore_best_weights
    # puts back at the end of training whether or not it stopped early (tf-keras 2.21).
    history["val_objective"] = [0.40, 0.39]
    write_history()
    assert validation_metrics(run) == {"click.auc": 0.51, "conversion.auc": 0.53, "loss": 0.59}
    history["val_objective"] = [0.38, 0.39]
    write_history()
    assert validation_metrics(run) == {"click.auc": 0.52, "conversion.auc": 0.55, "loss": 0.58}
    with pytest.raises(UserError, match="no validation metrics"):
        validation_metrics(tmp_path)


def _run(tmp_path, name, model_base, auc):
    run = tmp_path / name
    run.mkdir()
    os.symlink(model_base["keyword_ctr_path"], run / "saved_model")
    (run / "export_info.json").write_text(json.dumps({"saved_model": "saved_model", "family": "toy/keyword_ctr"}))
    (run / "metrics.json").write_text(json.dumps({"valid": {"model": {"auc": auc, "logloss": 0.2}}}))
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
