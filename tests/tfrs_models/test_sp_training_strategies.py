import json

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from adpush_core.errors import UserError
from tfrs_models.input import make_dataset
from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig
from tfrs_models.training.strategies import Trainer, default_k, kept_epoch, train

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


def test_alternating_steps_leave_the_other_sources_private_parameters(sp_data, sp_spec, tmp_path):
    trainer = Trainer(sp_spec, _config(sp_data, strategy="alternating"), tmp_path, verbose=0)
    model = trainer.model
    sf_private, ad_private = model.private_variables("sf"), model.private_variables("ad_click")
    shared = model.shared_variables()
    names = lambda t: set(model.input_signature(t)) | {"clicked"}  # noqa: E731
    sf_batch = next(iter(make_dataset(sp_spec, "sf", "train", 64, names=names("sf"))))
    ad_batch = next(iter(make_dataset(sp_spec, "ad_click", "train", 64, names=names("ad_click"))))

    before_sf, before_ad, before_shared = _values(sf_private), _values(ad_private), _values(shared)
    trainer.step_function(("ad_click",))({"ad_click": ad_batch})
    assert not any(_changed(before_sf, sf_private))  # SF head untouched on an ad step
    assert all(_changed(before_ad, ad_private))  # ad head and W_u, W_q, W_a, z all moved
    assert any(_changed(before_shared, shared))

    before_sf, before_ad = _values(sf_private), _values(ad_private)
    trainer.step_function(("sf",))({"sf": sf_batch})
    assert not any(_changed(before_ad, ad_private))  # attention + ad head untouched on SF step
    assert all(_changed(before_sf, sf_private))


def test_alternating_schedule_draws_one_to_k_deterministically(sp_data, sp_spec, tmp_path):
    trainer = Trainer(sp_spec, _config(sp_data, strategy="alternating", k=3.0, seed=5), tmp_path,
                      verbose=0)
    plans = [trainer.schedule(1, epoch) for epoch in range(20)]
    assert plans[0] == trainer.schedule(1, 0)  # same seed, same draws
    flat = [t for plan in plans for t in plan]
    assert len(plans[0]) == round(10 * (1 + 3.0))  # 640 rows / 64 = 10 SF batches per epoch
    share_sf = sum(t == ("sf",) for t in flat) / len(flat)
    assert abs(share_sf - 0.25) < 0.05  # P(main) = 1 / (1 + k)


def test_bm_accepts_only_joint(sp_data, sp_spec, tmp_path):
    with pytest.raises(UserError):
        Trainer(sp_spec, _config(sp_data, model="bm", strategy="alternating"), tmp_path)


def test_pretrain_finetune_carries_the_shared_weights(sp_data, sp_spec, tmp_path):
    snapshots = {}

    def snap(name):
        def hook(model):
            snapshots[name] = (_values(model.shared_variables()), _values(model.private_variables("sf")))
        return hook

    config = _config(sp_data, strategy="pretrain_finetune", epochs=1, pretrain_epochs=2)
    trainer = Trainer(sp_spec, config, tmp_path,
                      verbose=0, hooks={"pretrain_end": snap("end"), "finetune_start": snap("start")})
    initial_shared = _values(trainer.model.shared_variables())
    initial_sf_head = _values(trainer.model.private_variables("sf"))
    result = trainer.fit()
    assert [r["phase"] for r in result.history] == ["pretrain", "pretrain", "main"]
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


def test_trains_under_mirrored_strategy(sp_data, sp_spec, tmp_path):
    import tensorflow as tf

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    result = train(sp_spec, _config(sp_data, strategy="alternating", epochs=1), tmp_path,
                   distribution=mirrored, verbose=0)
    assert sum(result.history[0]["steps"].values()) == 30  # 10 SF batches × (1 + k=2)
    assert isinstance(result.model.shared_mlp.trainable_variables[0],
                      tf.distribute.DistributedValues)


def test_early_stopping_on_validation_auc(sp_data, sp_spec, tmp_path):
    # With a zero learning rate the validation AUC never improves after epoch 1, so patience 1
    # stops the run after epoch 2 although 5 were asked for.
    result = train(sp_spec, _config(sp_data, model="bm", epochs=5, patience=1, learning_rate=0.0),
                   tmp_path, verbose=0)
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert result.history[0]["valid_auc"] == result.history[1]["valid_auc"]


def test_same_seed_same_weights(sp_data, sp_spec, tmp_path):
    a = Trainer(sp_spec, _config(sp_data, seed=3), tmp_path / "a", verbose=0)
    first = _values(a.model.trainable_variables)
    b = Trainer(sp_spec, _config(sp_data, seed=3), tmp_path / "b", verbose=0)
    for x, y in zip(first, _values(b.model.trainable_variables)):
        np.testing.assert_array_equal(x, y)
    c = Trainer(sp_spec, _config(sp_data, seed=4), tmp_path / "c", verbose=0)
    assert any(not np.array_equal(x, y) for x, y in zip(first, _values(c.model.trainable_variables)))


def test_proportional_joint_batches_weigh_every_row_alike(sp_data, sp_spec, tmp_path):
    """joint_batches="proportional": the ad batch holds k·B rows (k = 2 here), an epoch is one
    pass over both train splits, and a step's loss is (Σ SF row losses + Σ ad row losses) / B."""
    trainer = Trainer(sp_spec, _config(sp_data, joint_batches="proportional"), tmp_path, verbose=0)
    assert trainer.batch_size("sf") == 64 and trainer.batch_size("ad_click") == 128
    plan = trainer.schedule(1, 0)
    assert plan == [("sf", "ad_click")] * 10  # 640 SF rows / 64; 10 × 128 = all 1280 ad rows
    batches = {t: next(trainer._iterator(t, 0)) for t in ("sf", "ad_click")}
    assert batches["ad_click"]["clicked"].shape[0] == 128
    model = trainer.model
    sums = {t: float(model.task_loss(t, batches[t], training=True)) for t in batches}
    rows = {t: batches[t]["clicked"].numpy().astype(np.float32) for t in batches}
    probs = {"sf": model.predict_sf(batches["sf"]).numpy(),
             "ad_click": model.predict_ad(batches["ad_click"]).numpy()}
    for t in batches:  # the summed BCE by hand
        p = np.clip(probs[t], 1e-7, 1 - 1e-7)
        by_hand = -np.sum(rows[t] * np.log(p) + (1 - rows[t]) * np.log(1 - p))
        assert sums[t] == pytest.approx(by_hand, rel=1e-4)
    out = trainer.step_function(("sf", "ad_click"))(batches)
    for t in batches:  # the step reports each source's sum over B rows, not its batch mean
        assert float(out[t]) == pytest.approx(sums[t] / 64.0, rel=1e-4)
    equal = Trainer(sp_spec, _config(sp_data, joint_batches="equal"), tmp_path / "equal", verbose=0)
    assert equal.batch_size("ad_click") == 64
    with pytest.raises(ValueError, match="joint_batches"):
        TrainConfig(joint_batches="everything")


def test_weight_average_is_the_bias_corrected_moving_average_of_the_steps(sp_data, sp_spec,
                                                                          tmp_path):
    """decay 0.5, three steps with iterates w1, w2, w3: m = 0.125·w1 + 0.25·w2 + 0.5·w3 from
    m = 0, read as m / (1 − 0.5³) = (w1 + 2·w2 + 4·w3) / 7; the iterate comes back after."""
    trainer = Trainer(sp_spec, _config(sp_data, weight_average=0.5), tmp_path, verbose=0)
    iterators = {t: trainer._iterator(t, 0) for t in ("sf", "ad_click")}
    step = trainer.step_function(("sf", "ad_click"))
    iterates = []
    for _ in range(3):
        step({t: next(iterators[t]) for t in iterators})
        iterates.append(_values(trainer.model.trainable_variables))
    trainer._use_average(True)
    for w1, w2, w3, v in zip(*iterates, trainer.model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), (w1 + 2 * w2 + 4 * w3) / 7, rtol=1e-5, atol=1e-7)
    trainer._use_average(False)
    for w3, v in zip(iterates[-1], trainer.model.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), w3)
    with pytest.raises(ValueError, match="weight_average"):
        TrainConfig(weight_average=1.0)


def test_weight_average_is_what_validation_sees_and_what_is_kept(sp_data, sp_spec, tmp_path):
    """One epoch: the kept weights (RUN/model/weights, read back into the model) are the
    epoch-end average, not the last iterate, and the history's validation logloss is theirs."""
    trainer = Trainer(sp_spec, _config(sp_data, weight_average=0.9, epochs=1), tmp_path,
                      verbose=0)
    trainer.fit()
    steps = int(trainer.average.updates)
    assert steps == 10  # 640 SF rows / 64
    average = [slot.numpy() / (1 - 0.9 ** steps) for slot in trainer.average.slots]
    for a, v in zip(average, trainer.model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), a, rtol=1e-5, atol=1e-7)
    assert trainer.history[0]["valid_logloss"] == pytest.approx(
        trainer.validate("sf")["valid_logloss"], rel=1e-6)


@pytest.mark.parametrize("min_improvement, epochs_run", [(0.0, 5), (1e-4, 3)])
def test_min_improvement_is_what_counts_as_better(sp_data, sp_spec, tmp_path, min_improvement,
                                                  epochs_run):
    """Validation loglosses 0.30, 0.29995, 0.29992, 0.2999, 0.29 with patience 2: every epoch
    is better than the one before, so without a threshold all 5 run; with 1e-4 epochs 2 and 3
    are within 1e-4 of epoch 1 (5e-5, 8e-5 lower), so the run stops after epoch 3."""
    trainer = Trainer(sp_spec, _config(sp_data, model="bm", epochs=5, patience=2,
                                       min_improvement=min_improvement), tmp_path, verbose=0)
    scripted = [0.30, 0.29995, 0.29992, 0.2999, 0.29]
    trainer.validate = lambda task: {"valid_auc": 0.5, "valid_logloss": scripted.pop(0)}
    result = trainer.fit()
    assert len(trainer.history) == epochs_run
    assert -float(trainer.best) == (0.29 if min_improvement == 0 else 0.30)
    # The history marks the epochs whose weights were kept; the result and the export gate
    # (serving/families.py) report the last of them, not the lowest logloss.
    assert [r["kept"] for r in trainer.history] == (
        [True] * 5 if min_improvement == 0 else [True, False, False])
    assert result.best_valid_logloss == (0.29 if min_improvement == 0 else 0.30)
    assert kept_epoch(trainer.history)["epoch"] == (4 if min_improvement == 0 else 0)
    with pytest.raises(ValueError, match="min_improvement"):
        TrainConfig(min_improvement=-1.0)


def test_cache_input_trains_on_the_same_rows_from_memory(sp_data, sp_spec, tmp_path):
    """cache_input: the train splits are read once and held (one InMemorySplit a task); an
    epoch takes as many steps as from the files, the loss falls, and the same seed repeats
    the run weight for weight."""
    config = _config(sp_data, model="mtdl", epochs=3, patience=10, cache_input=True)
    files = train(sp_spec, _config(sp_data, model="mtdl", epochs=1, patience=10), tmp_path / "f",
                  verbose=0)
    trainer = Trainer(sp_spec, config, tmp_path / "a", verbose=0)
    result = trainer.fit()
    assert sorted(trainer._in_memory) == ["ad_click", "sf"]
    assert result.history[0]["steps"] == files.history[0]["steps"]
    losses = [r["train_loss_sf"] for r in result.history]
    assert losses[-1] < losses[0], losses
    again = Trainer(sp_spec, config, tmp_path / "b", verbose=0)
    again.fit()
    for x, y in zip(_values(trainer.model.trainable_variables),
                    _values(again.model.trainable_variables)):
        np.testing.assert_array_equal(x, y)
