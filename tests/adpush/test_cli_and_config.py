"""The CLI shell, the run configuration, `adpush run` resumption and the Keras-2 guard."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from adpush.config import default_config, dumps, load_config
from adpush_core import tfenv
from adpush_core.errors import UserError


def test_keras_guard_accepts_keras_2_and_names_the_fix_for_keras_3():
    def tf_with_layers_from(module):
        dense = type("Dense", (), {"__module__": module})
        return types.SimpleNamespace(keras=types.SimpleNamespace(
            layers=types.SimpleNamespace(Dense=dense)))

    tfenv.check_keras(tf_with_layers_from("tf_keras.src.layers.core.dense"))
    with pytest.raises(tfenv.KerasVersionError, match="TF_USE_LEGACY_KERAS=1.*tf-keras"):
        tfenv.check_keras(tf_with_layers_from("keras.src.layers.core.dense"))


def test_importing_an_adpush_entry_point_selects_keras_2_in_a_fresh_process():
    code = ("import serving, tensorflow as tf, tf_keras, os; from adpush_core import tfenv; "
            "tfenv.import_tensorflow(); "
            "print(tf.keras.__name__, tf_keras.__version__, os.environ['TF_USE_LEGACY_KERAS'])")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out[0].startswith("tf_keras") and out[1].startswith("2.") and out[2] == "1"


def test_keras_3_active_gives_the_message_not_a_traceback():
    code = ("import os; os.environ['TF_USE_LEGACY_KERAS']='0'; import tensorflow; "
            "from adpush_core import tfenv; tfenv.import_tensorflow()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Keras 3 is active" in result.stderr and "TF_USE_LEGACY_KERAS=1" in result.stderr


def test_help_lists_subcommands_quickly():
    result = subprocess.run([sys.executable, "-m", "adpush.cli", "--help"], capture_output=True,
                            text=True, check=True)
    assert "simulate-logs" in result.stdout and "run" in result.stdout


def test_config_defaults_round_trip_through_toml(tmp_path):
    config = default_config()
    path = tmp_path / "c.toml"
    path.write_text(dumps(config))
    assert load_config(path) == config


def test_config_override_and_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[world]\nn_users = 321\n[train]\nepochs = 1\n")
    config = load_config(path, seed=9)
    assert config["world"]["n_users"] == 321 and config["train"]["epochs"] == 1
    assert config["run"]["seed"] == 9
    path.write_text("[train]\nepochz = 1\n")
    with pytest.raises(UserError, match="unknown setting 'train.epochz'"):
        load_config(path)
    path.write_text('[train]\nepochs = "two"\n')
    with pytest.raises(UserError, match="'train.epochs' must be int"):
        load_config(path)
    path.write_text("[world]\nn_users = -1\n")
    with pytest.raises(UserError, match="n_users must be a positive integer"):
        load_config(path)


def test_run_skips_finished_stages_and_force_redoes_them(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[world]\nn_users = 200\nn_ads = 300\ndays = 2\nbehaviour_users = 50\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "adpush.cli", "run", "--config", str(config), "--out", str(out),
           "--no-progress", "--stage", "simulate"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    marker = json.loads((out / ".stages/simulate.json").read_text())
    assert marker["result"]["rows"]["users.csv"] == 200
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "already done, skipping" in second.stdout
    forced = subprocess.run(cmd + ["--force"], capture_output=True, text=True)
    # forcing re-simulates into a dir holding the same run: a no-op, not an error
    assert forced.returncode == 0, forced.stderr
    assert "simulate: done" in forced.stdout


def test_abtest_table_keeps_the_scenarios_sizes_unless_it_sets_them():
    """make demo replays 001 Table 2 at its own sizes (0 = the scenario's): No.2 has 40.9M
    displays, No.5 20.2M, 32 contexts a user; a table value > 0 replaces them all."""
    from adpush.stages import abtest_scenario

    ab = dict(default_config()["abtest"])
    own = abtest_scenario(ab)
    assert [e["displays"] for e in own.experiments] == [30_516_000, 40_942_000, 30_500_000,
                                                         21_490_000, 20_200_000]
    assert own.defaults["slots"] == 32 and own.defaults["pre_days"] == ab["pre_days"]
    small = abtest_scenario({**ab, "displays_per_experiment": 200_000, "slots": 4, "pre_days": 0})
    assert {e["displays"] for e in small.experiments} == {200_000}
    assert small.defaults["slots"] == 4 and small.defaults["pre_days"] == 0


def test_abtest_table_rejects_negative_sizes_by_name():
    from adpush.stages import abtest_scenario

    ab = dict(default_config()["abtest"])
    with pytest.raises(UserError, match=r"\[abtest\] slots must be >= 0"):
        abtest_scenario({**ab, "slots": -1})


def test_the_demo_world_before_its_resizing_is_a_named_config():
    """abtest/world/configs/demo_6_sessions.toml gives the demo world of main 364598b both as
    a world config and as an `adpush run --config` overlay, and today's demo world differs
    from it in exactly the keys the README and adpush.toml name."""
    from pathlib import Path

    from abtest.world import WorldConfig

    path = Path(__file__).resolve().parents[2] / "abtest/world/configs/demo_6_sessions.toml"
    named = WorldConfig.named("demo_6_sessions")
    overlay = load_config(path)["world"]
    assert WorldConfig.from_toml(path) == named
    assert all(getattr(named, key) == value for key, value in overlay.items()), overlay
    assert (named.n_users, named.sessions_per_day, named.ads_per_session, named.ad_bias) == (
        2000, 6.0, 5, -3.1)
    today = default_config()["world"]
    changed = {key for key in today if today[key] != overlay[key]}
    assert changed == {"sessions_per_day", "ads_per_session", "ad_bias", "sf_exposure_scale",
                       "sf_exposure_activity_corr", "sp_clutter"}
