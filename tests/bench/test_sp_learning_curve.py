"""bench/sp_learning_curve.py: the thinned train splits the curve trains on."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "tfrs_models"))


def test_subsample_masks_are_nested_and_sized():
    import sp_learning_curve as curve

    masks = {f: curve.subsample_keep(20_000, f, seed=3) for f in (0.125, 0.5, 1.0)}
    assert masks[1.0].all()
    assert not (masks[0.125] & ~masks[0.5]).any()          # the smaller set is inside the larger
    assert abs(masks[0.5].mean() - 0.5) < 0.02 and abs(masks[0.125].mean() - 0.125) < 0.01
    assert np.array_equal(masks[0.5], curve.subsample_keep(20_000, 0.5, seed=3))
    with pytest.raises(ValueError):
        curve.subsample_keep(10, 0.0, seed=0)


def test_write_subsample_keeps_the_other_splits_and_counts_the_rows(tmp_path):
    from selling_point_fixtures import write_dataset

    import sp_learning_curve as curve
    from tfrs_models.input import load_spec, read_columns

    data = write_dataset(tmp_path / "data", seed=2)
    full = load_spec(data)
    kept = curve.write_subsample(data, tmp_path / "half", 0.5, seed=0)
    quarter = curve.write_subsample(data, tmp_path / "quarter", 0.25, seed=0)
    half = load_spec(tmp_path / "half")
    train_full = read_columns(full, "sf", "train", ["impression_id", "clicked"])
    train_half = read_columns(half, "sf", "train", ["impression_id", "clicked"])
    ids_quarter = read_columns(load_spec(tmp_path / "quarter"), "sf", "train",
                               ["impression_id"])["impression_id"]
    n = train_full["impression_id"].size
    # about half the rows, all of them original rows, the quarter inside the half (nested)
    assert kept["sf"][0] == train_half["impression_id"].size
    assert abs(kept["sf"][0] - n / 2) < 4 * np.sqrt(n / 4)
    assert set(train_half["impression_id"]) <= set(train_full["impression_id"])
    assert set(ids_quarter) <= set(train_half["impression_id"]) and quarter["sf"][0] < kept["sf"][0]
    assert kept["sf"][1] == int(train_half["clicked"].sum())
    # the spec's counts and click rate say so
    assert half.dataset("sf").row_counts["train"] == kept["sf"][0]
    assert half.label_rate("sf", "train", "clicked") == pytest.approx(train_half["clicked"].mean())
    # valid/test and the ad-click data are the original files, untouched
    for split in ("valid", "test"):
        assert np.array_equal(read_columns(half, "sf", split, ["impression_id"])["impression_id"],
                              read_columns(full, "sf", split, ["impression_id"])["impression_id"])
    assert half.dataset("ad_click").row_counts == full.dataset("ad_click").row_counts
    raw = json.loads((tmp_path / "half" / "spec.json").read_text())
    assert all(Path(v["file"]).is_absolute() for v in raw["vocabularies"].values())
