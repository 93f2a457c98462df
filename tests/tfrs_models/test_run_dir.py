"""The run directory both families write (tfrs_models/run_dir.py, docs/contracts.md §6)."""
from __future__ import annotations

import json

import pytest

from adpush_core.errors import UserError
from tfrs_models import run_dir


def test_selling_point_config_round_trip_and_runs_written_before(tmp_path):
    from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig

    config = RunConfig(data_dir="D", model=ModelConfig(name="bm"), train=TrainConfig(epochs=2))
    raw = json.loads(json.dumps(config.to_dict()))
    assert list(raw) == ["family", "data_dir", "datasets", "model", "train"]
    assert raw["datasets"] == ["sf"] and raw["model"]["name"] == "bm"
    assert RunConfig.from_dict(raw) == config
    assert RunConfig(model=ModelConfig(name="amtdl")).to_dict()["datasets"] == ["sf", "ad_click"]
    # A run written before: the model's name under ``model``, a since-removed training key.
    old = {**raw, "model": {**{k: v for k, v in raw["model"].items() if k != "name"}, "model": "bm"},
           "train": {**raw["train"], "checkpoint_every_steps": 0}}
    del old["datasets"]
    assert RunConfig.from_dict(old) == config
    with pytest.raises(UserError, match=r"config.json train: unknown keys \['epoch'\]"):
        RunConfig.from_dict({**raw, "train": {"epoch": 3}})


def test_cascade_config_round_trip_and_runs_written_before():
    from tfrs_models.cascade.config import ModelConfig, RunConfig, TrainConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig

    config = RunConfig(data_dir="D", dataset="sequence",
                       model=ModelConfig(name="aitm", tower_units=(8,),
                                         encoder=EncoderConfig(name="msia", msia_strides=(1, 1, 2))),
                       train=TrainConfig(steps_per_epoch=5))
    raw = json.loads(json.dumps(config.to_dict()))
    assert list(raw) == ["family", "data_dir", "datasets", "model", "train"]
    assert (raw["family"], raw["datasets"], raw["model"]["name"]) == ("cascade", ["sequence"], "aitm")
    assert RunConfig.from_dict(raw) == config
    old = {k: v for k, v in raw.items() if k != "datasets"} | {"dataset": "sequence"}
    assert RunConfig.from_dict(old) == config


def test_family_and_missing_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config.json does not exist"):
        run_dir.family(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(UserError, match="config.json is not JSON"):
        run_dir.family(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"family": "nope"}))
    with pytest.raises(UserError, match=r"family 'nope' is not one of"):
        run_dir.family(tmp_path)
    with pytest.raises(UserError, match="metrics.json does not exist.*adpush evaluate"):
        run_dir.read(tmp_path, run_dir.METRICS)


def test_metrics_layout_and_history_records(tmp_path):
    document = run_dir.metrics_document("cascade", rows=10, oracle_rows=9,
                                        test={"oracle": {"auc": 0.9}, "model": {"auc": 0.7}},
                                        decay_half_lives_hours=[24.0])
    assert document == {"family": "cascade", "split": "test", "rows": 10,
                        "test": {"model": {"auc": 0.7}, "oracle": {"auc": 0.9}},
                        "oracle_rows": 9, "decay_half_lives_hours": [24.0]}
    assert list(document["test"]) == ["model", "oracle"]
    run_dir.write(tmp_path, run_dir.METRICS, document)
    assert run_dir.read(tmp_path, run_dir.METRICS) == document
    history = {"loss": [0.5, 0.4], "val_loss": [0.6, 0.55]}
    assert run_dir.epoch_records(history) == [{"epoch": 0, "loss": 0.5, "val_loss": 0.6},
                                              {"epoch": 1, "loss": 0.4, "val_loss": 0.55}]
