"""The LightGBM cascade peer (bench/peers_cascade.py): its history features by hand, and that it
learns the fixture's sequence signal and joins an `adpush compare` table on the same rows."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
pytest.importorskip("lightgbm")


def test_peer_history_features_by_hand(cascade_spec):
    import peers_cascade

    rows = {
        "category": np.array([b"1"]), "item_id": np.array([b"7"]),
        "hist_category": np.array([[b"", b"1", b"2", b"1"]]),
        "hist_item_id": np.array([[b"", b"7", b"8", b"9"]]),
        "hist_behavior": np.array([[b"", b"cart", b"pv", b"fav"]]),
        "hist_time_gap": np.array([[0.0, 9.0, 5.0, 2.0]], np.float32),
    }
    x, names, _ = peers_cascade.peer_features(rows, cascade_spec)
    f = dict(zip(names, x[0]))
    assert f["hist_length"] == 3 and f["same_category_clicks_all"] == 2
    assert f["same_category_events_all"] == 2 and f["clicks_all"] == 2
    assert f["same_item_events"] == 1 and f["same_item_clicks"] == 1 and f["buys"] == 0
    assert f["gap_last_same_category_click"] == 2.0 and f["gap_last_event"] == 2.0
    assert f["gap_last_buy"] == peers_cascade.NO_EVENT_GAP
    assert f["click_share"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def context_data(tmp_path_factory):
    from cascade_fixture_data import write_context_dataset

    return write_context_dataset(tmp_path_factory.mktemp("peer") / "out", rows=2400, seed=1)


@pytest.mark.slow
def test_peer_learns_the_sequence_signal_and_joins_a_compare_table(context_data, tmp_path):
    import peers_cascade

    from tfrs_models.cascade.compare import to_markdown

    result = peers_cascade.run_peer(context_data, seeds=(0, 1))
    metrics = result["row"]["metrics"]
    # click ~ #recent same-category cart/fav: the hand-made counts carry it
    assert metrics["click_auc"]["mean"] > 0.62 and len(metrics["click_auc"]["values"]) == 2
    assert result["rows"]["test"] == 800
    table = {"data_dir": str(context_data), "dataset": "sequence", "seeds": [0], "test_rows": 800,
             "train": {"epochs": 1, "batch_size": 8, "learning_rate": 0.1}, "rows": []}
    (tmp_path / "compare.json").write_text(json.dumps(table))
    peers_cascade.add_to_compare(result, tmp_path)
    md = (tmp_path / "compare.md").read_text()
    assert "| lightgbm (peer) | - | - |" in md
    assert md == to_markdown(json.loads((tmp_path / "compare.json").read_text()))
    other = dict(table, test_rows=799)
    (tmp_path / "compare.json").write_text(json.dumps(other))
    from adpush_core.errors import UserError

    with pytest.raises(UserError, match="799 test rows"):
        peers_cascade.add_to_compare(result, tmp_path)


def test_peer_gets_the_title_tokens_as_a_bag_of_words(tmp_path):
    """Fairness: where the models read the candidate's ``title_tokens``, the peer gets one 0/1
    column per title vocabulary token (OOV and padding dropped), after the dense columns."""
    import peers_cascade
    from cascade_fixture_data import TITLE_TOKENS, write_sequence_dataset

    from tfrs_models.cascade.data import load_dataset

    spec = load_dataset(write_sequence_dataset(tmp_path / "data", rows=16, titles=True))
    rows = {
        "category": np.array([b"1", b"2"]), "item_id": np.array([b"7", b"8"]),
        "title_tokens": np.array([[b"good", b"w3", b"zzz", b""], [b"", b"", b"", b""]]),
        "hist_category": np.array([[b"", b"1"], [b"2", b"2"]]),
        "hist_item_id": np.array([[b"", b"7"], [b"8", b"9"]]),
        "hist_behavior": np.array([[b"", b"cart"], [b"pv", b"pv"]]),
        "hist_time_gap": np.array([[0.0, 9.0], [5.0, 2.0]], np.float32),
    }
    x, names, categorical = peers_cascade.peer_features(rows, spec)
    bag = [f"title_tokens__{t}" for t in TITLE_TOKENS]
    assert names[-len(bag):] == bag and "title_tokens" not in categorical
    dense = x.toarray()
    f0, f1 = dict(zip(names, dense[0])), dict(zip(names, dense[1]))
    assert [t for t in bag if f0[t]] == ["title_tokens__good", "title_tokens__w3"]
    assert not any(f1[t] for t in bag)
    assert f0["same_category_clicks_all"] == 1 and f1["hist_length"] == 2
