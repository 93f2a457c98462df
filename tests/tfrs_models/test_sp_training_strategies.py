import json

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from adpush_core.errors import UserError
from tfrs_models.input import make_dataset
from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig
from tfrs_models.selling_point.models import build_model
from tfrs_models.training.strategies import (alternating_draws, default_k, kept_epoch,
                                             load_trained_model, train)

SMALL = dict(embedding_dim=4, hidden_units=(8,), attention_units=4, use_user_id=True)


def _config(sp_data, model="mtdl", **train_kwargs):
    train_kwargs.setdefault("batch_size", 64)
    train_kwargs.setdefault("learning_rate", 0.01)
    return RunConfig(data_dir=str(sp_data[0]), model=ModelConfig(name=model, **SMALL),
                     train=TrainConfig(**train_kwargs))


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_default_k_is_the_row_ratio(sp_spec):
    # 1280 ad-click train rows / 640 SF train rows (the fixture's sizes).
    assert default_k(sp_spec) == 2.0


def _batch(spec, model, task, rows, split="train"):
    names = set(model.input_signature(task)) | {"clicked"}
    return next(iter(make_dataset(spec, task, split, rows, names=names)))


def _empty(batch):
    return {name: value[:0] for name, value in batch.items()}


def test_alternating_steps_leave_the_other_sources_private_parameters(sp_data, sp_spec):
    """One fit step per drawn source, the other source's batch empty (as Algorithm 1's input
    gives them): the other head and its Adam slots stay as they were."""
    import tensorflow as tf

    from tfrs_models.training.source_adam import SourceAdam
    from tfrs_models.training.strategies import loss_reach

    model = build_model(sp_spec, _config(sp_data, strategy="alternating").model)
    optimizer = SourceAdam(0.01, loss_reach(model, ("sf", "ad_click")), ("sf", "ad_click"))
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer)
    sf_private, ad_private = model.private_variables("sf"), model.private_variables("ad_click")
    shared = model.shared_variables()
    batches = {t: _batch(sp_spec, model, t, 64) for t in ("sf", "ad_click")}
    slots = lambda vs: [s for v in vs for s in (  # noqa: E731
        optimizer._momentums[optimizer._index_dict[optimizer._var_key(v)]],
        optimizer._velocities[optimizer._index_dict[optimizer._var_key(v)]])]

    def step(drawn):
        element = {t: (b if t == drawn else _empty(b)) for t, b in batches.items()}
        model.fit(tf.data.Dataset.from_tensors(element), epochs=1, verbose=0)

    before_sf, before_slots = _values(sf_private), _values(slots(sf_private))
    before_ad, before_shared = _values(ad_private), _values(shared)
    step("ad_click")
    assert not any(_changed(before_sf, sf_private))  # SF head untouched on an ad step …
    assert not any(_changed(before_slots, slots(sf_private)))  # … and so is its momentum
    assert all(_changed(before_ad, ad_private))  # ad head and W_u, W_q, W_a, z all moved
    assert any(_changed(before_shared, shared))

    before_sf, before_ad = _values(sf_private), _values(ad_private)
    before_slots = _values(slots(ad_private))
    step("sf")  # the ad head's momentum would move it here under a zero-gradient Adam step
    assert not any(_changed(before_ad, ad_private))  # attention + ad head untouched on SF step
    assert not any(_changed(before_slots, slots(ad_private)))
    assert all(_changed(before_sf, sf_private))


def test_alternating_draws_one_to_k_deterministically(sp_data, sp_spec, tmp_path):
    draws = [alternating_draws(5, epoch, 40, 3.0) for epoch in range(20)]
    np.testing.assert_array_equal(draws[0], alternating_draws(5, 0, 40, 3.0))  # same draws
    share_sf = float(np.mean(np.concatenate(draws) == 0))
    assert abs(share_sf - 0.25) < 0.05  # P(main) = 1 / (1 + k)
    # an epoch of training takes the draws' sources: 10 SF batches x (1 + k) steps
    result = train(sp_spec, _config(sp_data, strategy="alternating", k=3.0, seed=5, epochs=1),
                   tmp_path, verbose=0)
    assert result.history[0]["steps"] == {"ad_click": int(np.sum(draws[0] == 1)),
                                          "sf": int(np.sum(draws[0] == 0))}


def test_bm_accepts_only_joint(sp_data, sp_spec, tmp_path):
    with pytest.raises(UserError):
        train(sp_spec, _config(sp_data, model="bm", strategy="alternating"), tmp_path)


def test_pretrain_finetune_carries_the_shared_weights(sp_data, sp_spec, tmp_path):
    import tensorflow as tf

    snapshots = {}

    def snap(name):
        def hook(model):
            snapshots[name] = (_values(model.shared_variables()), _values(model.private_variables("sf")))
        return hook

    config = _config(sp_data, strategy="pretrain_finetune", epochs=1, pretrain_epochs=2)
    tf.keras.utils.set_random_seed(config.train.seed)  # the weights training starts from
    initial = build_model(sp_spec, config.model)
    initial_shared = _values(initial.shared_variables())
    initial_sf_head = _values(initial.private_variables("sf"))
    result = train(sp_spec, config, tmp_path, verbose=0,
                   hooks={"pretrain_end": snap("end"), "finetune_start": snap("start")})
    assert [r["phase"] for r in result.history] == ["pretrain", "pretrain", "main"]
    assert result.history[0]["steps"] == {"ad_click": 20}  # 1280 ad rows / 64
    assert result.history[2]["steps"] == {"sf": 10}
    end_shared, _ = snapshots["end"]
    start_shared, start_sf_head = snapshots["start"]
    # The fine-tune phase starts from the pre-trained shared weights …
    for a, b in zip(end_shared, start_shared):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(initial_shared, start_shared))
    # … while the SF head was never trained by the auxiliary task.
    for a, b in zip(initial_sf_head, start_sf_head):
        np.testing.assert_array_equal(a, b)


def test_joint_loss_falls_and_an_interrupted_run_resumes(sp_data, sp_spec, tmp_path):
    first = train(sp_spec, _config(sp_data, model="bm", epochs=2, patience=10), tmp_path, verbose=0)
    assert len(first.history) == 2
    # "Interrupt" after epoch 2, then ask for 5: epochs 3-5 run, 1-2 are not redone.
    resumed = train(sp_spec, _config(sp_data, model="bm", epochs=5, patience=10), tmp_path,
                    verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1, 2, 3, 4]
    assert history[:2] == first.history
    losses = [r["train_loss_sf"] for r in resumed.history]
    assert losses[-1] < losses[0] - 0.02, losses
    assert (tmp_path / "model" / "weights.index").exists()
    assert list((tmp_path / "tensorboard").iterdir())


def test_a_checkpoint_of_the_old_training_loop_is_refused(sp_data, sp_spec, tmp_path):
    """The loop before Keras fit saved another object graph (step, sf_updates, … at the
    root): resuming from it would restore part of a run, so it is a UserError naming the run."""
    import tensorflow as tf

    config = _config(sp_data, model="bm", epochs=1)
    model = build_model(sp_spec, config.model)
    old = tf.train.Checkpoint(model=model, step=tf.Variable(3, dtype=tf.int64),
                              sf_updates=tf.Variable(3, dtype=tf.int64))
    tf.train.CheckpointManager(old, str(tmp_path / "checkpoints"), max_to_keep=2).save()
    with pytest.raises(UserError, match=str(tmp_path)):
        train(sp_spec, config, tmp_path, verbose=0)


def test_trains_under_mirrored_strategy(sp_data, sp_spec, tmp_path):
    import tensorflow as tf

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    config = _config(sp_data, strategy="alternating", epochs=1, weight_average=0.9)
    result = train(sp_spec, config, tmp_path, distribution=mirrored, verbose=0)
    assert sum(result.history[0]["steps"].values()) == 30  # 10 SF batches × (1 + k=2)
    assert isinstance(result.model.shared_mlp.trainable_variables[0],
                      tf.distribute.DistributedValues)
    # one replica: the same figures as without a strategy
    plain = train(sp_spec, config, tmp_path / "p", verbose=0)
    assert result.history[0]["valid_logloss"] == pytest.approx(
        plain.history[0]["valid_logloss"], rel=1e-5)


def test_early_stopping_on_validation_auc(sp_data, sp_spec, tmp_path):
    # With a zero learning rate the validation AUC never improves after epoch 1, so patience 1
    # stops the run after epoch 2 although 5 were asked for.
    result = train(sp_spec, _config(sp_data, model="bm", epochs=5, patience=1, learning_rate=0.0),
                   tmp_path, verbose=0)
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert result.history[0]["valid_auc"] == result.history[1]["valid_auc"]


def test_same_seed_same_weights(sp_data, sp_spec, tmp_path):
    runs = {name: train(sp_spec, _config(sp_data, seed=seed, epochs=1), tmp_path / name,
                        verbose=0) for name, seed in (("a", 3), ("b", 3), ("c", 4))}
    first = _values(runs["a"].model.trainable_variables)
    for x, y in zip(first, _values(runs["b"].model.trainable_variables)):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y)
               for x, y in zip(first, _values(runs["c"].model.trainable_variables)))


def test_proportional_joint_batches_weigh_every_row_alike(sp_data, sp_spec, tmp_path):
    """joint_batches="proportional": the ad batch holds k·B rows (k = 2 here), an epoch is one
    pass over both train splits, and a step's loss is (Σ SF row losses + Σ ad row losses) / B."""
    result = train(sp_spec, _config(sp_data, joint_batches="proportional", epochs=1), tmp_path,
                   verbose=0)
    assert result.history[0]["steps"] == {"ad_click": 10, "sf": 10}  # 10 × 128 = all ad rows
    model = result.model
    batches = {"sf": _batch(sp_spec, model, "sf", 64), "ad_click": _batch(sp_spec, model, "ad_click", 128)}
    rows = {t: batches[t]["clicked"].numpy().astype(np.float32) for t in batches}
    probs = {"sf": model.predict_sf(batches["sf"]).numpy(),
             "ad_click": model.predict_ad(batches["ad_click"]).numpy()}
    losses = model.task_losses(batches)
    for t in batches:  # the summed BCE by hand, over B = 64 rows whatever the batch holds
        p = np.clip(probs[t], 1e-7, 1 - 1e-7)
        by_hand = -np.sum(rows[t] * np.log(p) + (1 - rows[t]) * np.log(1 - p))
        assert float(losses[t]) == pytest.approx(by_hand / 64.0, rel=1e-4)
    equal = train(sp_spec, _config(sp_data, joint_batches="equal", epochs=1), tmp_path / "equal",
                  verbose=0)
    assert equal.history[0]["steps"] == {"ad_click": 10, "sf": 10}
    assert equal.history[0]["valid_logloss"] != result.history[0]["valid_logloss"]
    with pytest.raises(ValueError, match="joint_batches"):
        TrainConfig(joint_batches="everything")


def test_weight_average_is_the_bias_corrected_moving_average_of_the_steps():
    """decay 0.5, three steps with iterates w1, w2, w3: m = 0.125·w1 + 0.25·w2 + 0.5·w3 from
    m = 0, read as m / (1 − 0.5³) = (w1 + 2·w2 + 4·w3) / 7; the iterate comes back after."""
    import tensorflow as tf

    from tfrs_models.training.source_adam import WeightAverage

    w = tf.Variable([0.0, 0.0])
    average = WeightAverage([w], 0.5)
    for value in ([7.0, 0.0], [0.0, 7.0], [7.0, 14.0]):
        w.assign(value)
        average.update()
    average.swap_in()
    np.testing.assert_allclose(w.numpy(), [(7 + 0 + 28) / 7, (0 + 14 + 56) / 7], rtol=1e-6)
    average.swap_out()
    np.testing.assert_array_equal(w.numpy(), [7.0, 14.0])
    with pytest.raises(ValueError, match="weight_average"):
        TrainConfig(weight_average=1.0)


def test_weight_average_is_what_validation_sees_and_what_is_kept(sp_data, sp_spec, tmp_path):
    """One epoch: the kept weights (RUN/model/weights) are not the last iterate (in
    RUN/checkpoints), and the history's validation logloss is theirs."""
    import tensorflow as tf

    from tfrs_models import metrics
    from tfrs_models.selling_point.predict import predict_split

    result = train(sp_spec, _config(sp_data, weight_average=0.9, epochs=1), tmp_path, verbose=0)
    model, spec, _ = load_trained_model(tmp_path)
    pred = predict_split(model, spec, "sf", "valid")
    assert result.history[0]["valid_logloss"] == pytest.approx(
        metrics.logloss(pred["clicked"], pred["prob"]), rel=1e-6)
    iterate = build_model(spec, result.model.config)  # the last Adam iterate, to resume from
    tf.train.Checkpoint(model=iterate).read(
        tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))).expect_partial()
    assert any(not np.allclose(a, b) for a, b in zip(
        _values(iterate.trainable_variables), _values(model.trainable_variables)))


def test_early_stopping_counts_only_improvements_beyond_min_improvement():
    """Validation loglosses 0.30, 0.29995, 0.29992, 0.2999, 0.29 with patience 2: every epoch
    is better than the one before, so without a threshold all 5 run; with 1e-4 epochs 2 and 3
    are within 1e-4 of epoch 1 (5e-5, 8e-5 lower), so the run stops after epoch 3 and ends on
    epoch 1's weights."""
    import tensorflow as tf

    from tfrs_models.training.callbacks import EarlyStopping

    for min_improvement, kept_marks in ((0.0, [True] * 5), (1e-4, [True, False, False])):
        callback = EarlyStopping("valid_logloss", patience=2, min_delta=min_improvement)
        model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
        model.build([None, 1])
        callback.set_model(model)
        callback.on_train_begin()
        history = []
        for epoch, loss in enumerate([0.30, 0.29995, 0.29992, 0.2999, 0.29]):
            model.set_weights([np.full([1, 1], float(epoch)), np.zeros([1])])
            logs = {"valid_logloss": loss, "valid_auc": 0.5}
            callback.on_epoch_end(epoch, logs)
            history.append({"phase": "main", "epoch": epoch, **logs, "kept": callback.improved})
            if model.stop_training:
                break
        callback.on_train_end()
        assert [r["kept"] for r in history] == kept_marks
        assert callback.best == (0.29 if min_improvement == 0 else 0.30)
        # the run ends on the kept epoch's weights
        assert model.get_weights()[0][0, 0] == (4 if min_improvement == 0 else 0)
        assert callback.state()["stopped_epoch"] == (0 if min_improvement == 0 else 2)
        # the result and the export gate report the last kept epoch, not the lowest logloss
        assert kept_epoch(history)["epoch"] == (4 if min_improvement == 0 else 0)
    with pytest.raises(ValueError, match="min_improvement"):
        TrainConfig(min_improvement=-1.0)


def test_cache_input_trains_on_the_same_rows_from_memory(sp_data, sp_spec, tmp_path):
    """cache_input: the train splits are read once and held (one InMemorySplit a task); an
    epoch takes as many steps as from the files, the loss falls, and the same seed repeats
    the run weight for weight."""
    config = _config(sp_data, model="mtdl", epochs=3, patience=10, cache_input=True)
    files = train(sp_spec, _config(sp_data, model="mtdl", epochs=1, patience=10), tmp_path / "f",
                  verbose=0)
    result = train(sp_spec, config, tmp_path / "a", verbose=0)
    assert result.history[0]["steps"] == files.history[0]["steps"]
    assert result.history[0]["valid_logloss"] != files.history[0]["valid_logloss"]
    losses = [r["train_loss_sf"] for r in result.history]
    assert losses[-1] < losses[0], losses
    again = train(sp_spec, config, tmp_path / "b", verbose=0)
    for x, y in zip(_values(result.model.trainable_variables),
                    _values(again.model.trainable_variables)):
        np.testing.assert_array_equal(x, y)


def test_the_deprecated_mirrored_flag_is_distribution_mirrored(sp_data, tmp_path, capsys):
    import argparse

    from tfrs_models.selling_point.cli import register_train, train_command

    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    base = ["sf", "--data", str(sp_data[0]), "--run-dir", str(tmp_path)]
    assert parser.parse_args(base).distribution == "none"
    with pytest.raises(UserError, match="--mirrored contradicts --distribution multi_worker"):
        train_command(parser.parse_args([*base, "--mirrored", "--distribution", "multi_worker"]))
    assert "--mirrored is deprecated, use --distribution mirrored" in capsys.readouterr().err


def test_an_early_stopped_run_stays_finished_and_another_runs_checkpoints_are_refused(
        sp_data, sp_spec, tmp_path):
    """min_improvement 10: no epoch after the first is better, so patience 1 stops after epoch
    2 on epoch 1's weights; asking for more epochs trains none; other settings are refused."""
    import tensorflow as tf

    config = _config(sp_data, model="bm", epochs=4, patience=1, min_improvement=10.0)
    stopped = train(sp_spec, config, tmp_path, verbose=0)
    assert [r["kept"] for r in stopped.history] == [True, False]
    again = train(sp_spec, _config(sp_data, model="bm", epochs=6, patience=1,
                                   min_improvement=10.0), tmp_path, verbose=0)
    assert again.history == stopped.history
    for a, b in zip(_values(again.model.trainable_variables),
                    _values(stopped.model.trainable_variables)):
        np.testing.assert_array_equal(a, b)
    kept = build_model(sp_spec, config.model)
    tf.train.Checkpoint(model=kept).read(str(tmp_path / "model" / "weights")).expect_partial()
    for a, b in zip(_values(kept.trainable_variables), _values(stopped.model.trainable_variables)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match=r"checkpoints of another run \(it differs in train\)"):
        train(sp_spec, _config(sp_data, model="bm", epochs=4, patience=2, min_improvement=10.0),
              tmp_path, verbose=0)


def test_pretrain_finetune_resumes_in_its_phase(sp_data, sp_spec, tmp_path):
    """A finished pre-training is not redone: a larger fine-tune cap adds fine-tune epochs."""
    first = train(sp_spec, _config(sp_data, strategy="pretrain_finetune", epochs=1,
                                   pretrain_epochs=1, patience=10), tmp_path, verbose=0)
    more = train(sp_spec, _config(sp_data, strategy="pretrain_finetune", epochs=2,
                                  pretrain_epochs=1, patience=10), tmp_path, verbose=0)
    assert [r["phase"] for r in more.history] == ["pretrain", "main", "main"]
    assert more.history[:2] == first.history
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["epochs_done"]) == ("main", 2)
