"""``train_model(run_dir=RUN)``: checkpoints each epoch and resumes from them, TensorBoard
scalars equal to the history, and neither moves a figure."""
from __future__ import annotations

import json

import numpy as np
import pytest


def _configs(epochs, learning_rate=3e-3):
    from tfrs_models.cascade.config import ModelConfig, TrainConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig

    return (ModelConfig(name="esmm", encoder=EncoderConfig(name="mean")),
            TrainConfig(batch_size=25, epochs=epochs, learning_rate=learning_rate, seed=0))


def _train(spec, epochs, run_dir=None, patience=5, **kw):
    from adpush_core.tfenv import import_tensorflow

    import_tensorflow().config.experimental.enable_op_determinism()
    from tfrs_models.cascade.train import train_model

    return train_model(spec, *_configs(epochs, **kw), patience=patience, run_dir=run_dir)


def _scalars(logdir):
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    found = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return found


def test_checkpoints_resume_with_a_larger_cap_and_a_finished_run_stays_finished(cascade_spec, tmp_path):
    from adpush_core.errors import UserError

    run = tmp_path / "run"
    _, plain = _train(cascade_spec, 2)
    _, two = _train(cascade_spec, 2, run_dir=run)
    assert two == plain                                  # the callbacks move no figure
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 2 and state["history"] == two

    train, validation = _scalars(run / "tensorboard" / "train"), _scalars(run / "tensorboard" / "validation")
    assert train["epoch_loss"] == pytest.approx(two["loss"], rel=1e-6)
    assert validation["epoch_objective"] == pytest.approx(two["val_objective"], rel=1e-6)

    model, three = _train(cascade_spec, 3, run_dir=run)  # resumes at epoch 3
    assert {k: v[:2] for k, v in three.items()} == two and len(three["loss"]) == 3
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 3

    again, same = _train(cascade_spec, 3, run_dir=run)   # finished: no epoch, same weights
    assert same == three
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(UserError, match=r"checkpoints of another run \(it differs in train\)"):
        _train(cascade_spec, 3, run_dir=run, learning_rate=1e-2)


def test_an_early_stopped_run_resumes_as_finished_on_its_best_weights(cascade_spec, tmp_path):
    run = tmp_path / "run"
    stopped, history = _train(cascade_spec, 4, run_dir=run, patience=1)   # stops at epoch 4
    assert json.loads((run / "checkpoints" / "state.json").read_text())["early_stopping"][
        "stopped_epoch"] == 3
    resumed, again = _train(cascade_spec, 6, run_dir=run, patience=1)
    assert again == history
    for a, b in zip(resumed.get_weights(), stopped.get_weights()):
        np.testing.assert_array_equal(a, b)
