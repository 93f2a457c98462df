"""build-data on the real Taobao UserBehavior samples (../shared/data), with injected bad rows."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from beam_pipelines.pipeline import build_data
from beam_test_helpers import TAOBAO_TAIL, count_records, dead_letters, read_split, tree_digest

START, END = 1511539200, 1511539200 + 9 * 86400
INJECTED = [
    b"999999,1,2,pv\n",                    # wrong_column_count
    b"999999,abc,2,pv,1511848894\n",       # non_integer_field
    b"999999,1,2,like,1511848894\n",       # unknown_behavior
    b"999999,1,2,pv,1400000000\n",         # timestamp_outside_window
    b"\n",                                 # empty_line
    b"999999,1,\xc3\x28,pv,1511848894\n",  # undecodable_bytes
]


@pytest.fixture(scope="module")
def taobao_run(shared_data_dir, tmp_path_factory):
    raw = (shared_data_dir / TAOBAO_TAIL).read_bytes()
    logs = tmp_path_factory.mktemp("taobao") / "UserBehavior.csv"
    logs.write_bytes(raw + b"".join(INJECTED))
    out = tmp_path_factory.mktemp("taobao_out")
    result = build_data("taobao", [str(logs)], out, num_shards=3)
    return raw, logs, out, result


def _events(raw: bytes):
    for line in raw.decode().splitlines():
        u, i, c, b, t = line.split(",")
        yield int(u), int(i), int(c), b, int(t)


def test_dead_letters_equal_injected_rows(taobao_run):
    raw, logs, out, result = taobao_run
    natural_outside = sum(1 for *_, t in _events(raw) if not START <= t < END)
    assert natural_outside == 4  # SOURCE.md: the extracts hold a few out-of-window timestamps
    dead = dead_letters(out)
    assert len(dead) == len(INJECTED) + natural_outside == result.stats["rows_rejected"]["total"]
    injected = {d["line_number"]: d["reason"] for d in dead if d["line_number"] > 10000}
    assert injected == {10001: "wrong_column_count", 10002: "non_integer_field", 10003: "unknown_behavior",
                        10004: "timestamp_outside_window", 10005: "empty_line", 10006: "undecodable_bytes"}
    assert result.stats["rows_read"]["total"] == 10000 + len(INJECTED)


def test_records_parse_with_spec_and_history_is_strictly_earlier(taobao_run):
    raw, logs, out, result = taobao_run
    spec = json.loads((out / "spec.json").read_text())
    events = [e for e in _events(raw) if START <= e[4] < END]
    pvs = [e for e in events if e[3] == "pv"]
    # Last touch, independent of the pipeline's code: a pv is clicked if a cart/fav/buy of its
    # item comes at or after it and before the user's next pv of that item.
    by_key = {}
    for u, i, _, b, t in sorted(events, key=lambda e: (e[0], e[4], e[1], ("pv", "cart", "fav", "buy").index(e[3]))):
        by_key.setdefault((u, i), []).append((t, b))
    expected_clicks = 0
    for actions in by_key.values():
        views = [k for k, (_, b) in enumerate(actions) if b == "pv"]
        for k, nxt in zip(views, views[1:] + [len(actions)]):
            expected_clicks += any(b in ("cart", "fav", "buy") for _, b in actions[k + 1:nxt])
    rows = [r for s in ("train", "valid", "test") for r in read_split(out, "sequence", s)]
    assert len(rows) == len(pvs) == sum(spec["datasets"]["sequence"]["row_counts"].values())
    assert sum(int(r["click"]) for r in rows) == expected_clicks
    # Taobao has no catalogue: no title feature in the spec or the records, no title vocabulary
    assert "title_tokens" not in spec["datasets"]["sequence"]["features"]
    assert "title_token" not in spec["vocabularies"] and "title_tokens" not in rows[0]
    for r in rows:
        assert np.all(r["hist_time_gap"] > 0)   # log1p(gap) > 0 <=> every event strictly before
        assert len(r["hist_item_id"]) == len(r["hist_behavior"]) <= 50
        assert r["conversion"] <= r["click"]
    # split by day: 9 days at 50/10/40 -> China days 0-3 train, 4 valid, 5-8 test
    for split, days in (("train", range(0, 4)), ("valid", [4]), ("test", range(5, 9))):
        assert {int(r["day"]) for r in read_split(out, "sequence", split)} <= set(days)


def test_vocabulary_respects_min_count_on_train_days(taobao_run):
    raw, logs, out, result = taobao_run
    train_end = START + 4 * 86400
    counts = Counter(str(i) for _, i, _, _, t in _events(raw) if START <= t < train_end)
    cats = Counter(str(c) for _, _, c, _, t in _events(raw) if START <= t < train_end)
    expected = [t for _, t in sorted((-n, t) for t, n in counts.items() if n >= 10)]
    assert (out / "vocab" / "item_id.txt").read_text().split() == expected
    expected_cats = [t for _, t in sorted((-n, t) for t, n in cats.items() if n >= 10)]
    assert (out / "vocab" / "category.txt").read_text().split() == expected_cats
    assert len(expected_cats) > 10


def test_same_input_byte_identical_across_runner_modes(taobao_run, tmp_path):
    raw, logs, out, result = taobao_run
    again = tmp_path / "again"
    build_data("taobao", [str(logs)], again, num_shards=3,
               beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert tree_digest(again) == tree_digest(out)


def test_last_day_is_test(shared_data_dir, tmp_path):
    out = tmp_path / "out"
    result = build_data("taobao", [str(shared_data_dir / TAOBAO_TAIL)], out, test_days=1, valid_days=1,
                        min_count=3)
    assert result.spec["splits"]["days"] == {"train": list(range(7)), "valid": [7], "test": [8]}
    assert {int(r["day"]) for r in read_split(out, "sequence", "test")} == {8}
    assert result.spec["vocabularies"]["item_id"]["min_count"] == 3


@pytest.mark.slow
def test_time_sorted_extract(shared_data_dir, tmp_path):
    out = tmp_path / "out"
    path = shared_data_dir / "taobao_user_behavior" / "UserBehavior_timesorted_110300.csv"
    result = build_data("taobao", [str(path)], out)
    # SOURCE.md: pv 98,361 rows, all on 2017-11-26 (China day 1 -> train), none rejected
    assert result.stats["rows_rejected"]["total"] == 0
    assert result.spec["datasets"]["sequence"]["row_counts"] == {"train": 98361, "valid": 0, "test": 0}
    assert count_records(out, "sequence", "train") == 98361
