"""The cascade models must *learn*: float inputs are standardised with train statistics, and a
model trained briefly on a small fixture with the world's story ranks well above chance.

Before these checks, every model scored AUC ≈ 0.45 on the demo world and conversion AUC ≈ 0.2
on Taobao: a raw ``hist_time_gap`` (log1p seconds, 4–14) dominated the freshly initialised
projections, so the first steps — which pull every output down to the base rate — pulled long
histories down most, and long histories are the ones that click (see float_statistics).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest


@pytest.fixture(scope="module")
def context_data(tmp_path_factory):
    from cascade_fixture_data import write_context_dataset

    return write_context_dataset(tmp_path_factory.mktemp("context") / "out", rows=2400, seed=1)


def _train_rows(spec, n=100_000):
    from tfrs_models.input import dataset_batches

    first = next(iter(dataset_batches(spec, "train", n, order="sequential_records")))
    return {k: v.numpy() for k, v in first.items()}


def test_float_statistics_cover_real_events_of_train_only(cascade_spec):
    from tfrs_models.input import float_statistics

    rows = _train_rows(cascade_spec)
    real = rows["hist_time_gap"][rows["hist_behavior"] != b""]
    stats = float_statistics(cascade_spec)
    assert set(stats) == {"hist_time_gap"}
    assert stats["hist_time_gap"]["mean"] == pytest.approx(real.mean(), rel=1e-5)
    assert stats["hist_time_gap"]["std"] == pytest.approx(real.std(), rel=1e-4)
    # Padding (0.0) is left out: including it would pull the mean well below every real gap.
    assert stats["hist_time_gap"]["mean"] > rows["hist_time_gap"].mean()


def test_shared_embeddings_standardise_float_features(cascade_spec, cascade_batch):
    from tfrs_models.cascade.features import InputLayout, SharedEmbeddings

    stats = {"hist_time_gap": {"mean": 7.0, "std": 2.0}}
    layout = dataclasses.asdict(InputLayout.from_spec(cascade_spec, stats))
    out = SharedEmbeddings(layout, embedding_dim=4, history_matches=False)(cascade_batch)
    # hist_time_gap is the last feature list in spec order: the last channel of the sequence
    # (before the match channels, off here).
    gap = cascade_batch["hist_time_gap"].numpy()
    np.testing.assert_allclose(out["sequence"].numpy()[..., -1], (gap - 7.0) / 2.0, rtol=1e-6)
    # Without statistics (an old layout) the value passes unchanged.
    raw = SharedEmbeddings(dataclasses.asdict(InputLayout.from_spec(cascade_spec)), 4,
                           history_matches=False)(cascade_batch)
    np.testing.assert_allclose(raw["sequence"].numpy()[..., -1], gap, rtol=1e-6)


def test_layout_of_carries_train_statistics(cascade_spec):
    from tfrs_models.cascade.train import layout_of

    layout = layout_of(cascade_spec)
    assert layout["float_stats"]["hist_time_gap"]["std"] > 0.1


def _fit_and_score(spec, model, encoder, steps, seed=0, exclude=()):
    from adpush_core.tfenv import import_tensorflow

    tf = import_tensorflow()
    from tfrs_models.cascade.config import ModelConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig
    from tfrs_models.input import dataset_batches
    from tfrs_models.cascade.models.registry import build_model
    from tfrs_models.cascade.train import layout_of, predict_split, score

    tf.keras.utils.set_random_seed(seed)
    m = build_model(layout_of(spec, exclude), ModelConfig(name=model, exclude_features=exclude,
                                                          encoder=EncoderConfig(name=encoder)))
    m.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
    m.fit(dataset_batches(spec, "train", 64, order="sequential_records", shuffle=True, seed=seed,
                          repeat=True, cache=True),
          steps_per_epoch=steps, epochs=1, verbose=0)
    return score(predict_split(lambda b: m(b, training=False), spec, "test"))


def test_esmm_learns_the_planted_context_signal(context_data):
    """The fixture's true probabilities reach click AUC ≈ 0.74 on test; chance is 0.5."""
    from tfrs_models.cascade.data import load_dataset

    scores = _fit_and_score(load_dataset(context_data), "esmm", "mean", steps=150)
    assert scores["click"]["auc"] > 0.58
    assert scores["conversion"]["auc"] > 0.65


@pytest.mark.slow
@pytest.mark.parametrize("model,encoder", [("cnn_attention", "tcn"), ("aitm", "target_attention"),
                                           ("mmoe", "msia"), ("shared_bottom", "multi_time_scale")])
def test_every_model_learns_the_planted_context_signal(context_data, model, encoder):
    from tfrs_models.cascade.data import load_dataset

    scores = _fit_and_score(load_dataset(context_data), model, encoder, steps=150)
    assert scores["click"]["auc"] > 0.58
    assert scores["conversion"]["auc"] > 0.65


@pytest.mark.parametrize("model", ["esmm", "aitm"])
def test_untrained_heads_start_at_the_train_base_rate(context_data, model):
    """Bias = logit(train rate): an untrained model already predicts the base rate (≈ 0.22 click,
    ≈ 0.06 conversion here), instead of 0.5 for both."""
    from tfrs_models.cascade.config import ModelConfig
    from tfrs_models.cascade.encoders.registry import EncoderConfig
    from tfrs_models.cascade.data import load_dataset
    from tfrs_models.input import dataset_batches
    from tfrs_models.cascade.models.registry import build_model
    from tfrs_models.cascade.train import layout_of

    spec = load_dataset(context_data)
    rates = spec.label_rates["train"]
    layout = layout_of(spec)
    assert layout["label_rates"] == pytest.approx(rates)
    batch = next(iter(dataset_batches(spec, "train", 256, order="sequential_records")))
    out = build_model(layout, ModelConfig(name=model, encoder=EncoderConfig(name="mean")))(batch)
    assert np.mean(out["p_click"].numpy()) == pytest.approx(rates["click"], abs=0.06)
    assert np.mean(out["p_conversion"].numpy()) == pytest.approx(rates["conversion"], abs=0.04)


def test_history_reaches_the_towers_and_beats_a_history_blind_model(context_data):
    """The fixture's click depends on #cart/fav in the candidate's category among the last 5
    events — a signal only the history carries. The same model with every feature list left
    out (history-blind) can only learn the item's goodness; with the history it must be far
    better. Same data, seed and steps for both."""
    from tfrs_models.cascade.data import load_dataset

    spec = load_dataset(context_data)
    history = [f.name for f in spec.sequence_features]
    with_history = _fit_and_score(spec, "cnn_attention", "tcn", steps=150)
    blind = _fit_and_score(spec, "cnn_attention", "none", steps=150, exclude=tuple(history))
    assert with_history["click"]["auc"] > blind["click"]["auc"] + 0.05, (with_history, blind)
    assert blind["click"]["auc"] < 0.62  # the item alone (good vs not) is a weak signal here


def test_title_tokens_carry_the_item_term_across_items(tmp_path):
    """With 1200 items (two train rows each) an item id learns nothing; the fixture's title
    token ``good`` (the first third of the items: click +0.8 in the logit, conversion 0.5 vs 0.1
    after a click) is shared by 400 of them. The same model with and without ``title_tokens``
    (same data, seed and steps): the title must carry the item term, on conversion most."""
    from cascade_fixture_data import write_context_dataset

    from tfrs_models.cascade.data import load_dataset

    spec = load_dataset(write_context_dataset(tmp_path / "out", rows=2400, seed=1, n_items=1200,
                                           titles=True))
    with_title = _fit_and_score(spec, "esmm", "mean", steps=150)
    without = _fit_and_score(spec, "esmm", "mean", steps=150, exclude=("title_tokens",))
    assert with_title["conversion"]["auc"] > without["conversion"]["auc"] + 0.05, (with_title, without)
    assert with_title["click"]["auc"] > without["click"]["auc"], (with_title, without)
