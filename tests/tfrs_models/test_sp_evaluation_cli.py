import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from adpush.cli import build_parser
from adpush_core.errors import UserError
from tfrs_models import metrics
from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig


def test_cli_parses_train_sf_and_dispatches_evaluate_by_family(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["train", "sf", "--model", "amtdl", "--strategy", "alternating",
                              "--data", "D", "--run-dir", "R", "--k", "3", "--seed", "4"])
    assert args.kind == "sf" and args.func.__name__ == "train_command"
    from tfrs_models.selling_point.cli import run_config_from_args

    config = run_config_from_args(args)
    assert (config.model.name, config.train.strategy, config.train.k, config.train.seed) == (
        "amtdl", "alternating", 3.0, 4)
    assert config.model.exclude_features == () and config.model.dropout == 0.0
    args = parser.parse_args(["train", "sf", "--data", "D", "--run-dir", "R",
                              "--exclude-features", "user_id,history_sf_keywords",
                              "--dropout", "0.2", "--embedding-l2", "1e-4"])
    config = run_config_from_args(args)
    assert config.model.exclude_features == ("user_id", "history_sf_keywords")
    assert (config.model.dropout, config.model.embedding_l2) == (0.2, 1e-4)
    args = parser.parse_args(["evaluate", "--run-dir", str(tmp_path)])
    with pytest.raises(UserError):
        args.func(args)  # no config.json
    (tmp_path / "config.json").write_text(json.dumps({"family": "no_such_family"}))
    with pytest.raises(UserError):
        args.func(args)


def test_evaluate_writes_model_and_oracle_figures_per_segment(sp_data, sp_spec, tmp_path):
    from tfrs_models.selling_point.evaluation import evaluate_run
    from tfrs_models.training.strategies import train

    config = RunConfig(data_dir=str(sp_data[0]),
                       model=ModelConfig(name="mtdl", embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=1, batch_size=64))
    train(sp_spec, config, tmp_path, verbose=0)
    with pytest.warns(UserWarning, match="no ceiling_"):  # the fixture's oracle has p_click only
        result = evaluate_run(tmp_path, oracle_dir=sp_data[1])
    assert "no ceiling_* columns" in result["ceilings_missing"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    assert (tmp_path / "roc.png").stat().st_size > 0
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    assert (result["family"], result["split"], result["rows"], result["oracle_rows"]) == (
        "selling_point", "test", 160, 160)
    assert list(result["test"]) == ["model", "baseline", "oracle"]
    assert set(result["test"]["oracle"]["at_k"]["precision"]) == {str(k) for k in range(1, 11)}
    # The fixture's oracle separates its planted 0.7 / 0.05 click probabilities well.
    assert result["test"]["oracle"]["auc"] > 0.8
    assert result["auxiliary_ad_click"]["n"] == 320
    assert sum(s["model"]["n"] for s in result["segments"].values()) == 160
    # Table 3 segments from an independent count over the generator's rows.
    from collections import Counter

    from selling_point_fixtures import generate_rows

    sf_rows, ad_rows = generate_rows(0)
    main, aux = Counter(), Counter()
    for rows, counter in ((sf_rows, main), (ad_rows, aux)):
        for r in rows:
            if r["day"] <= 3:
                counter[r["user_id"]] += r["clicked"]
    expected = Counter(f"main{'<=6' if main[r['user_id']] <= 6 else '>6'},"
                       f"aux{'<=21' if aux[r['user_id']] <= 21 else '>21'}"
                       for r in sf_rows if r["day"] == 5)
    assert {k: v["model"]["n"] for k, v in result["segments"].items()} == dict(expected)
    for name, seg in result["segments"].items():
        assert seg["oracle"]["n"] == seg["model"]["n"]
        assert name in {"main<=6,aux<=21", "main<=6,aux>21", "main>6,aux<=21", "main>6,aux>21"}


def test_read_oracle_gives_the_ceiling_columns_in_the_rows_order_or_says_they_are_absent(tmp_path):
    from tfrs_models.selling_point.evaluation import read_oracle

    (tmp_path / "oracle").mkdir()
    path = tmp_path / "oracle" / "sf_impressions.csv"
    path.write_text("impression_id,p_click,ceiling_popularity,ceiling_query,ceiling_profile\n"
                    "3,0.1,0.01,0.02,0.03\n5,0.2,0.11,0.12,0.13\n7,0.30000001,0.21,0.22,0.23\n")
    scores, note = read_oracle(tmp_path, [7, 3])
    assert note is None and list(scores) == ["oracle", "ceiling_popularity", "ceiling_query",
                                             "ceiling_profile"]
    assert scores["oracle"].tolist() == [0.30000001, 0.1]
    assert scores["ceiling_profile"].tolist() == [0.23, 0.03]
    with pytest.raises(UserError, match="1 test impressions .*missing from"):
        read_oracle(tmp_path, [3, 4])
    path.write_text("impression_id,p_click\n3,0.1\n")  # written before the ceilings existed
    scores, note = read_oracle(tmp_path, [3])
    assert list(scores) == ["oracle"] and "no ceiling_* columns" in note
    with pytest.raises(UserError, match="does not exist"):
        read_oracle(tmp_path / "nowhere", [3])


@pytest.mark.slow
def test_adpush_train_and_evaluate_commands(sp_data, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = tmp_path / "run"
    base = [sys.executable, "-m", "adpush.cli"]
    subprocess.run(base + ["train", "sf", "--model", "bm", "--data", str(sp_data[0]), "--run-dir",
                           str(run), "--epochs", "1", "--batch-size", "64", "--quiet"],
                   check=True, env=env, timeout=600)
    info = json.loads((run / "export_info.json").read_text())  # the run's one SavedModel
    assert info["family"] == "selling_point/bm" and (run / info["saved_model"] / "saved_model.pb").is_file()
    subprocess.run(base + ["evaluate", "--run-dir", str(run), "--oracle", str(sp_data[1])],
                   check=True, env=env, timeout=600)
    result = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "bm"
    assert "oracle" in result["test"] and np.isfinite(result["test"]["model"]["auc"])


def test_family_commands_are_registered_when_present():
    import importlib.util

    parser = build_parser()
    args = parser.parse_args(["evaluate", "--run-dir", "R", "--oracle", "L"])
    assert args.oracle == "L" and args.data is None
    if importlib.util.find_spec("tfrs_models.cascade.cli") is not None:
        module = importlib.import_module("tfrs_models.cascade.cli")
        if hasattr(module, "register"):
            subcommands = parser._subparsers._group_actions[0].choices
            assert "compare" in subcommands and "train" in subcommands


def test_baseline_fit_before_the_model_is_what_the_evaluation_reads(sp_data, sp_spec, tmp_path):
    """`adpush evaluate --baseline-only` (what `adpush run` starts beside the training) keeps
    the LR baseline in RUN/baseline; the evaluation then reads it instead of fitting again, and
    gives the same baseline figures as a fit of its own; a kept fit of other data is refit."""
    from tfrs_models.selling_point import evaluation
    from tfrs_models.selling_point.evaluation import BASELINE_DIR, evaluate_run, kept_baseline
    from tfrs_models.training.strategies import train

    early, plain = tmp_path / "early", tmp_path / "plain"
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--run-dir", str(early), "--baseline-only"])
    with pytest.raises(UserError, match="--data"):
        args.func(args)
    args = parser.parse_args(["evaluate", "--run-dir", str(early), "--data", str(sp_data[0]),
                              "--baseline-only"])
    assert args.func(args) == 0
    ids, scores, summary = kept_baseline(early, sp_spec)
    assert len(ids) == 160 and not list(early.glob(f".{BASELINE_DIR}-*"))
    config = RunConfig(data_dir=str(sp_data[0]),
                       model=ModelConfig(name="bm", embedding_dim=4, hidden_units=(8,)),
                       train=TrainConfig(epochs=1, batch_size=64))
    for run in (early, plain):
        train(sp_spec, config, run, verbose=0)
    fits = []
    original = evaluation.fit_baseline
    evaluation.fit_baseline = lambda *a: fits.append(a) or original(*a)
    try:
        read = evaluate_run(early)
        assert fits == []  # read, not refit
        own = evaluate_run(plain)
        assert len(fits) == 1
    finally:
        evaluation.fit_baseline = original
    assert read["baseline_fit"] == own["baseline_fit"] == summary
    assert read["test"]["baseline"] == own["test"]["baseline"]
    # A kept fit whose key does not match this data is not read.
    record = json.loads((early / BASELINE_DIR / "baseline.json").read_text())
    record["key"]["spec_sha256"] = "0" * 64
    (early / BASELINE_DIR / "baseline.json").write_text(json.dumps(record))
    assert kept_baseline(early, sp_spec) is None


@pytest.mark.parametrize("flags, message", [
    (["--weight-average", "1.5"], r"--weight-average: weight_average must be in \[0, 1\)"),
    (["--min-improvement", "-1"], r"--min-improvement: min_improvement must be >= 0"),
])
def test_train_sf_names_the_flag_a_bad_value_came_from(tmp_path, flags, message):
    args = build_parser().parse_args(["train", "sf", "--data", str(tmp_path), "--run-dir",
                                      str(tmp_path / "run"), *flags])
    with pytest.raises(UserError, match=message):
        args.func(args)
    assert not (tmp_path / "run").exists()  # nothing written
