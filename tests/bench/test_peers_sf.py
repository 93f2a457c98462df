"""bench/peers.py sf: LightGBM and the LR baseline on the same SF rows as the models."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "tfrs_models"))


def test_peers_sf_scores_the_same_test_rows(tmp_path):
    pytest.importorskip("lightgbm")
    from selling_point_fixtures import write_dataset

    import peers

    data = write_dataset(tmp_path / "data", seed=1)
    out = tmp_path / "peers.json"
    assert peers.main(["sf", "--data", str(data), "--out", str(out), "--no-baseline"]) == 0
    result = json.loads(out.read_text())
    spec = json.loads((data / "spec.json").read_text())
    assert result["n_test"] == spec["datasets"]["sf"]["row_counts"]["test"]
    assert result["rows_per_block"]["overall"] == result["n_test"]
    # the planted facet preference shows through the history-match and keyword features
    assert result["auc"]["lightgbm"]["overall"] > 0.6
    assert "history_sf_keywords_has_candidate" in result["peers"]["lightgbm"]["features"]
    # the second LightGBM peer gets the user's id as one more categorical feature
    assert "user_id" in result["peers"]["lightgbm_user_id"]["features"]
    assert "user_id" not in result["peers"]["lightgbm"]["features"]
    assert result["auc"]["lightgbm_user_id"]["overall"] > 0.55
