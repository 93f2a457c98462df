"""Figures of the selling-point training harness, pinned.

``golden/sp_training.json`` holds the history.json numbers and a fingerprint of the final
weights (per variable: sum and sum of squares) of one small run per strategy and option on the
session fixture, recorded from the custom training loop the family had before it moved onto
Keras ``fit`` (issue 15). The harness must reproduce them; ``ADPUSH_WRITE_GOLDEN=1`` rewrites
the file (only when a figure is meant to move: say so in the commit).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from tfrs_models.selling_point.config import ModelConfig, RunConfig, TrainConfig

GOLDEN = Path(__file__).resolve().parent / "golden" / "sp_training.json"
SMALL = dict(embedding_dim=4, hidden_units=(8,), attention_units=4, use_user_id=True)
RTOL = 1e-5

# name -> (model, TrainConfig keywords); every run also takes batch 64, lr 0.01.
CASES = {
    "joint_proportional": ("amtdl", dict(epochs=3, patience=10)),
    "joint_equal": ("mtdl", dict(epochs=2, patience=10, joint_batches="equal")),
    "bm": ("bm", dict(epochs=2, patience=10)),
    "alternating": ("mtdl", dict(strategy="alternating", epochs=3, patience=10)),
    "pretrain_finetune": ("mtdl", dict(strategy="pretrain_finetune", pretrain_epochs=2,
                                       epochs=2, patience=10)),
    "weight_average_min_improvement": ("amtdl", dict(epochs=4, patience=2, weight_average=0.9,
                                                     min_improvement=2e-3)),
    "cache_input": ("mtdl", dict(epochs=2, patience=10, cache_input=True)),
}


def _config(sp_data, model, **train):
    train = {"batch_size": 64, "learning_rate": 0.01, **train}
    return RunConfig(data_dir=str(sp_data[0]), model=ModelConfig(name=model, **SMALL),
                     train=TrainConfig(**train))


def _fingerprint(model) -> list:
    return [[float(np.sum(v.numpy(), dtype=np.float64)),
             float(np.sum(np.square(v.numpy(), dtype=np.float64)))]
            for v in model.trainable_variables]


def _run(name, sp_data, sp_spec, run_dir) -> dict:
    from tfrs_models.training.strategies import train

    model, kwargs = CASES[name]
    result = train(sp_spec, _config(sp_data, model, **kwargs), run_dir, verbose=0)
    history = json.loads((Path(run_dir) / "history.json").read_text())
    return {"history": history, "weights": _fingerprint(result.model)}


def _resumed(sp_data, sp_spec, run_dir) -> dict:
    """An interrupted run (cap 2 epochs) resumed with a larger cap (4)."""
    from tfrs_models.training.strategies import train

    kwargs = dict(strategy="alternating", patience=10, weight_average=0.9)
    train(sp_spec, _config(sp_data, "mtdl", epochs=2, **kwargs), run_dir, verbose=0)
    result = train(sp_spec, _config(sp_data, "mtdl", epochs=4, **kwargs), run_dir, verbose=0)
    history = json.loads((Path(run_dir) / "history.json").read_text())
    return {"history": history, "weights": _fingerprint(result.model)}


def _compare(got, want, where=""):
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            _compare(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=RTOL, abs=1e-7), where
    else:
        assert got == want, where


def _check(name, got):
    if os.environ.get("ADPUSH_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        golden[name] = got
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    _compare(got, json.loads(GOLDEN.read_text())[name], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_training_reproduces_the_pinned_figures(name, sp_data, sp_spec, tmp_path):
    _check(name, _run(name, sp_data, sp_spec, tmp_path))


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_pinned_figures(sp_data, sp_spec, tmp_path):
    _check("interrupt_resume", _resumed(sp_data, sp_spec, tmp_path))
