"""``tfrs_models.export.prepare_run``: the dispatch on config.json's family, and the cascade's
export_info with the figures of the epoch early stopping restored (no training: a run's files)."""
from __future__ import annotations

import json

import pytest

from adpush_core.errors import UserError
from tfrs_models.cascade.export import kept_epoch
from tfrs_models.export import prepare_run, run_family
from tfrs_models.run_dir import epoch_records


def test_a_run_without_a_known_family_is_a_user_error_naming_config_json(tmp_path):
    with pytest.raises(UserError, match=r"config.json does not exist"):
        prepare_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": "esmm"}}))
    with pytest.raises(UserError, match=r"config.json: 'family' is None, expected one of selling_point, cascade"):
        run_family(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"family": "ranking"}))
    with pytest.raises(UserError, match=r"config.json: 'family' is 'ranking'"):
        prepare_run(tmp_path)


def test_cascade_kept_epoch_is_the_first_lowest_validation_objective():
    # EarlyStopping(monitor="val_objective", restore_best_weights=True) restores it at the end
    # of training whether or not it stopped early.
    def records(objectives):
        return [{"epoch": e, "loss": 0.5, "val_objective": v} for e, v in enumerate(objectives)]

    assert kept_epoch(records([0.40, 0.39, 0.41]))["epoch"] == 1
    assert kept_epoch(records([0.38, 0.39, 0.38]))["epoch"] == 0
    assert kept_epoch([{"epoch": 0, "loss": 0.5}]) is None  # no validation split


def test_cascade_export_info_carries_the_restored_epochs_figures(tmp_path):
    (tmp_path / "export" / "saved_model").mkdir(parents=True)
    (tmp_path / "config.json").write_text(json.dumps({"family": "cascade", "model": {"name": "esmm"}}))
    with pytest.raises(UserError, match="has no saved_model.pb"):
        prepare_run(tmp_path)
    (tmp_path / "export" / "saved_model" / "saved_model.pb").write_bytes(b"")
    history = {"val_click_auc": [0.52, 0.51], "val_conversion_auc": [0.55, 0.53], "val_loss": [0.58, 0.59],
               "val_cvr_auc_clicked": [0.6, 0.61], "val_objective": [0.38, 0.39], "click_auc": [0.6, 0.7]}

    def write_history():  # history.json: one record per epoch (tfrs_models.run_dir)
        (tmp_path / "history.json").write_text(json.dumps(epoch_records(history)))

    write_history()
    info = json.loads(prepare_run(tmp_path).read_text())
    assert info == {"saved_model": "export/saved_model", "family": "cascade/esmm",
                    "validation": {"split": "valid", "epoch": 0, "metrics": {
                        "click.auc": 0.52, "conversion.auc": 0.55, "cvr_auc_clicked": 0.6, "loss": 0.58}}}
    history["val_objective"] = [0.40, 0.39]
    write_history()
    assert json.loads(prepare_run(tmp_path).read_text())["validation"]["metrics"] == {
        "click.auc": 0.51, "conversion.auc": 0.53, "cvr_auc_clicked": 0.61, "loss": 0.59}
    # Without a validation split there is nothing for the gate to read.
    history = {"loss": [0.6]}
    write_history()
    assert "validation" not in json.loads(prepare_run(tmp_path).read_text())
