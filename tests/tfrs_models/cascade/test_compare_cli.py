"""compare table, oracle join, and the train → export → evaluate command path."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest


def test_oracle_join_on_user_and_ts(tmp_path):
    from tfrs_models.cascade.compare import oracle_predictions

    (tmp_path / "oracle").mkdir()
    (tmp_path / "oracle" / "behaviour.csv").write_text(
        "user_id,ts,p_click,p_conversion\n7,100,0.5,0.1\n3,200,0.2,0.1\n3,100,0.9,0.3\n")
    pred = {"user_id": np.array([b"3", b"7", b"9"]), "ts": np.array([100, 100, 5]),
            "click": np.array([1, 0, 1]), "conversion": np.array([1, 0, 0])}
    oracle = oracle_predictions(tmp_path, pred)
    assert oracle["joined_rows"] == 2
    np.testing.assert_allclose(oracle["p_click"], [0.9, 0.5])
    np.testing.assert_allclose(oracle["p_cvr"], [0.3 / 0.9, 0.2])
    assert oracle["click"].tolist() == [1, 0]


def test_score_hand_case():
    from tfrs_models.cascade.train import score

    pred = {"p_click": np.array([0.9, 0.2, 0.6, 0.4]), "p_conversion": np.array([0.5, 0.1, 0.2, 0.3]),
            "click": np.array([1, 0, 1, 0]), "conversion": np.array([1, 0, 0, 0]),
            "user_id": np.array([b"a", b"a", b"b", b"b"])}
    s = score(pred)
    assert s["click"]["auc"] == 1.0 and s["click"]["accuracy"] == 1.0
    assert s["conversion"]["recall"] == 1.0 and s["conversion"]["specificity"] == 1.0
    # Clicked impressions: rows 0 and 2; the converting one scores higher.
    assert s["cvr_auc_clicked"] == 1.0


def test_markdown_has_mean_std_and_oracle_rows():
    from tfrs_models.cascade.compare import METRICS, TASKS, to_markdown

    stat = {"mean": 0.7, "std": 0.01, "values": [0.69, 0.71]}
    metrics = {f"{t}_{m}": stat for t in TASKS for m in METRICS} | {"cvr_auc_clicked": stat}
    oracle = {k: {"mean": 0.9, "std": 0.0, "values": [0.9]} for k in metrics}
    md = to_markdown({"data_dir": "d", "dataset": "sequence", "seeds": [0, 1],
                      "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.1},
                      "rows": [{"model": "aitm", "encoder": "tcn", "learning_rate": 0.003,
                                "metrics": metrics},
                               {"model": "oracle", "encoder": "-", "metrics": oracle}]})
    assert "| aitm | tcn | 0.003 | 0.7000 ± 0.0100 |" in md
    assert "| oracle | - | - | 0.9000 |" in md
    assert md.count("## ") == 3


def _parse(register, argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.mark.slow
def test_train_evaluate_and_compare_commands(cascade_data, tmp_path):
    from tfrs_models.cascade import cli

    run = tmp_path / "run"
    args = _parse(cli.register_train, ["cascade", "--data", str(cascade_data), "--run-dir", str(run),
                                       "--model", "aitm", "--encoder", "msia", "--epochs", "1",
                                       "--batch-size", "64"])
    assert args.func(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["family"], config["datasets"], config["model"]["name"]) == (
        "cascade", ["sequence"], "aitm")
    trained = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0] and "val_objective" in history[0]
    info = json.loads((run / "export_info.json").read_text())  # the run's one SavedModel
    assert info["family"] == "cascade/aitm" and (run / info["saved_model"] / "saved_model.pb").is_file()
    args = argparse.Namespace(run_dir=str(run), data=None, oracle=None, seed=0)
    assert cli.evaluate(args) == 0
    # Scored again from the SavedModel: the same figures, in the same layout.
    evaluated = json.loads((run / "metrics.json").read_text())
    assert evaluated["test"]["model"]["cvr_auc_clicked"] == pytest.approx(
        trained["test"]["model"]["cvr_auc_clicked"], abs=1e-6)
    assert set(evaluated) == set(trained) and evaluated["rows"] == trained["rows"]

    args = _parse(cli.register, ["compare", "--data", str(cascade_data), "--seeds", "2",
                                 "--out", str(tmp_path / "cmp"), "--models", "esmm,mmoe",
                                 "--encoders", "mean", "--epochs", "1", "--batch-size", "64"])
    assert args.func(args) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["esmm", "mmoe"]
    assert len(result["rows"][0]["metrics"]["click_auc"]["values"]) == 2


def test_oracle_scores_compare_like_with_like(tmp_path):
    """A test row without an oracle entry is left out of *every* column: the model is re-scored
    on exactly the rows the oracle and the ceilings are scored on."""
    from tfrs_models.cascade.oracle import oracle_scores
    from tfrs_models.cascade.train import score

    (tmp_path / "oracle").mkdir()
    (tmp_path / "oracle" / "behaviour.csv").write_text(
        "user_id,ts,p_click,p_conversion,p_click_item,p_conversion_item,p_click_context,p_conversion_context\n"
        "1,10,0.9,0.5,0.5,0.2,0.8,0.4\n1,20,0.1,0.05,0.5,0.2,0.2,0.1\n"
        "2,10,0.6,0.1,0.4,0.1,0.5,0.1\n2,30,0.3,0.2,0.4,0.1,0.3,0.1\n")
    pred = {"user_id": np.array([b"1", b"1", b"2", b"2", b"3"]), "ts": np.array([10, 20, 10, 30, 10]),
            "click": np.array([1, 0, 1, 0, 1]), "conversion": np.array([1, 0, 0, 0, 1]),
            # the unjoined last row would make the model look perfect on conversion
            "p_click": np.array([0.2, 0.7, 0.6, 0.1, 0.99]), "p_conversion": np.array([0.1, 0.3, 0.2, 0.05, 0.9])}
    result = oracle_scores(tmp_path, pred)
    assert (result["rows"], result["joined_rows"]) == (5, 4)
    subset = score({k: v[:4] for k, v in pred.items()})
    assert result["model"]["click"]["auc"] == subset["click"]["auc"] == 0.5   # (0 + 1 + 1 + 0) / 4
    assert result["oracle"]["click"]["auc"] == 1.0
    assert result["ceiling_context"]["click"]["auc"] == 1.0
    assert result["ceiling_item"]["click"]["auc"] == 0.5                       # ties within users
    assert result["oracle"]["conversion"]["auc"] == 1.0
