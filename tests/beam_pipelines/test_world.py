"""build-data on the world's logs: a hand-written fixture (contracts §1) and the tiny world."""
from __future__ import annotations

import json

import numpy as np
import pytest

from beam_pipelines.config import BuildConfig
from beam_pipelines.pipeline import build_data
from beam_test_helpers import count_records, dead_letters, read_split, tree_digest

T0 = 19000 * 86400  # day 0 of the fixture world
DAY = 86400


def write_fixture(root):
    root.mkdir()
    files = {
        "users.csv": ["user_id,age_bucket,gender,city_tier,activity_level", "1,2,0,1,3", "2,5,1,4,0"],
        "ads.csv": ["ad_id,category,title,attributes",
                    "100,3,c03_w01 sp_color_01 f001,sp_color_01 sp_size_02", "101,4,c04_w02 f002,sp_size_02"],
        "selling_points.csv": ["keyword,facet", "sp_color_01,color", "sp_size_02,size"],
        "sf_impressions.csv": [
            "impression_id,user_id,query,sf_keyword,day,ts,clicked",
            f"1,1,cat_03 mod_color_1,sp_color_01,0,{T0 + 100},1",
            f"2,1,cat_03,sp_size_02,0,{T0 + 200},1",
            f"3,1,cat_04,sp_size_02,1,{T0 + DAY + 50},0",
            f"4,1,cat_03,sp_color_01,2,{T0 + 2 * DAY + 10},1",
            f"5,2,cat_04,sp_size_02,3,{T0 + 3 * DAY + 10},0",
            f"6,9,cat_04,sp_size_02,3,{T0 + 3 * DAY + 11},0",       # unknown user
            f"7,1,cat_03,sp_color_01,3,{T0 + 3 * DAY + 20},0",
            "8,1,cat_03,sp_color_01,3,notanint,0",                  # non-integer ts
        ],
        "ad_impressions.csv": [
            "impression_id,user_id,query,ad_id,position,day,ts,clicked",
            f"11,1,cat_03,100,1,0,{T0 + 150},1",
            f"12,2,cat_04,101,2,1,{T0 + DAY + 5},0",
            f"13,2,cat_04,999,1,1,{T0 + DAY + 6},0",                # unknown ad
            "14,1,cat_03,100,1",                                    # wrong column count
        ],
        "behaviour.csv": [
            "user_id,item_id,category,behavior,ts",
            f"1,100,3,pv,{T0 + 100}",
            f"1,100,3,cart,{T0 + 300}",
            f"1,101,4,pv,{T0 + DAY + 10}",
            f"2,101,4,pv,{T0 + 3 * DAY + 5}",
            f"2,101,4,buy,{T0 + 3 * DAY + 50}",
            f"1,100,3,share,{T0 + 400}",                           # unknown behaviour
        ],
    }
    for name, lines in files.items():
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_world_fixture_end_to_end(tmp_path):
    out = tmp_path / "out"
    build_data("world", write_fixture(tmp_path / "logs"), out, min_count=2, num_shards=2)
    spec = json.loads((out / "spec.json").read_text())
    # 4 days at 50/10/40 -> days 0-1 train, 2 valid, 3 test
    assert spec["splits"]["days"] == {"train": [0, 1], "valid": [2], "test": [3]}
    assert spec["splits"]["window_start"] == T0

    sf = {int(r["impression_id"]): r for s in ("train", "valid", "test") for r in read_split(out, "sf", s)}
    assert sorted(sf) == [1, 2, 3, 4, 5, 7]
    assert [t.decode() for t in sf[4]["history_sf_keywords"]] == ["sp_size_02", "sp_color_01"]
    assert [t.decode() for t in sf[7]["history_sf_keywords"]] == ["sp_color_01", "sp_size_02", "sp_color_01"]
    assert list(sf[1]["history_sf_keywords"]) == []  # nothing before day 0
    assert list(sf[3]["history_sf_keywords"]) == [b"sp_size_02", b"sp_color_01"]
    assert sf[1]["query_category"] == b"3" and list(sf[1]["query_tokens"]) == [b"cat_03", b"mod_color_1"]
    assert (sf[5]["age_bucket"], sf[5]["city_tier"], sf[5]["clicked"], sf[5]["day"]) == (b"5", b"4", 0, 3)

    ads = {int(r["impression_id"]): r for s in ("train", "valid", "test") for r in read_split(out, "ad_click", s)}
    assert sorted(ads) == [11, 12]
    assert list(ads[11]["title_tokens"]) == [b"c03_w01", b"sp_color_01", b"f001"]
    assert (ads[11]["category"], ads[11]["position"], ads[11]["clicked"]) == (b"3", b"1", 1)
    assert list(ads[12]["history_sf_keywords"]) == []  # user 2 never clicked an SF
    # ad 100 clicked by user 1 on day 0 at T0+150: in the history from day 1 on, never on day 0
    # (not even for SF impression 2, later that same day)
    title = [b"c03_w01", b"sp_color_01", b"f001"]
    assert {i: list(sf[i]["history_ad_title_tokens"]) for i in (1, 2, 3, 4, 7)} == {
        1: [], 2: [], 3: title, 4: title, 7: title}
    assert list(ads[11]["history_ad_title_tokens"]) == [] == list(ads[12]["history_ad_title_tokens"])

    seq = [r for s in ("train", "valid", "test") for r in read_split(out, "sequence", s)]
    by_ts = {int(r["ts"]): r for r in seq}
    assert sorted(by_ts) == [T0 + 100, T0 + DAY + 10, T0 + 3 * DAY + 5]
    assert (by_ts[T0 + 100]["click"], by_ts[T0 + 100]["conversion"]) == (1, 0)  # carted later
    assert list(by_ts[T0 + DAY + 10]["hist_behavior"]) == [b"pv", b"cart"]
    np.testing.assert_allclose(by_ts[T0 + DAY + 10]["hist_time_gap"],
                               np.log1p([DAY + 10 - 100, DAY + 10 - 300]), rtol=1e-6)
    # a buy without a cart ("buy now") is a click-through and a conversion (last touch)
    assert (by_ts[T0 + 3 * DAY + 5]["click"], by_ts[T0 + 3 * DAY + 5]["conversion"]) == (1, 1)
    assert by_ts[T0 + 3 * DAY + 5]["gender"] == b"1"
    # the candidate's catalogue title (ads.csv), in title order
    assert list(by_ts[T0 + 100]["title_tokens"]) == [b"c03_w01", b"sp_color_01", b"f001"]
    assert list(by_ts[T0 + DAY + 10]["title_tokens"]) == [b"c04_w02", b"f002"]
    assert spec["datasets"]["sequence"]["features"]["title_tokens"] == {
        "dtype": "string", "kind": "varlen", "group": "item", "role": "feature",
        "vocab": "title_token", "max_length": 16, "part": "context"}
    # train days 0-1, every event's item counted: ad 100 (3 events: pv, cart, share dead-lettered
    # -> 2), ad 101 (1): min_count 2 keeps ad 100's tokens only
    assert (out / "vocab" / "title_token.txt").read_text().split() == ["c03_w01", "f001", "sp_color_01"]

    reasons = sorted((d["file"].rsplit("/", 1)[1], d["line_number"], d["reason"]) for d in dead_letters(out))
    assert reasons == [("ad_impressions.csv", 4, "unknown_ad_id"), ("ad_impressions.csv", 5, "wrong_column_count"),
                       ("behaviour.csv", 7, "unknown_behavior"), ("sf_impressions.csv", 7, "unknown_user_id"),
                       ("sf_impressions.csv", 9, "non_integer_field")]
    # train days 0-1: cat_03 x3, then cat_04 / sp_color_01 / sp_size_02 x2; the rest once
    assert (out / "vocab" / "token.txt").read_text().split() == ["cat_03", "cat_04", "sp_color_01", "sp_size_02"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_rejected"]["total"] == 5
    assert stats["rows_written"]["sf"] == {"train": 3, "valid": 1, "test": 2}
    assert spec["datasets"]["sf"]["label_rates"]["train"]["clicked"] == pytest.approx(2 / 3)


def test_world_byte_identical_across_runner_modes_and_sharded_by_user(tmp_path):
    import tensorflow as tf

    from beam_pipelines.write_sequence_shards import user_shard

    logs = write_fixture(tmp_path / "logs")
    a, b = tmp_path / "in_memory", tmp_path / "multi_processing"
    build_data("world", logs, a, min_count=2, num_shards=2)
    build_data("world", logs, b, min_count=2, num_shards=2,
               beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert tree_digest(a) == tree_digest(b)
    # examples are built inside their user's shard: every record of a file has its user there,
    # in impression-id order (users 1 and 2 share shard 1: test has user 2's id 5 before user 1's 7)
    seen = 0
    for dataset in ("sf", "ad_click"):
        for path in sorted((a / dataset).glob("*.tfrecord.gz")):
            shard = int(path.name.split("-")[1])
            keys = []
            for raw in tf.data.TFRecordDataset(str(path), compression_type="GZIP").as_numpy_iterator():
                features = tf.train.Example.FromString(raw).features.feature
                keys.append((int(features["user_id"].bytes_list.value[0]),
                             features["impression_id"].int64_list.value[0]))
            assert all(user_shard(user, 2) == shard for user, _ in keys), path.name
            assert [i for _, i in keys] == sorted(i for _, i in keys), path.name
            seen += len(keys)
    assert seen == 6 + 2


@pytest.mark.slow  # the shared tiny_world_logs fixture alone takes minutes on a busy 2-core box
def test_tiny_world_logs_end_to_end(tmp_path, request):
    pytest.importorskip("abtest.world.logs")
    logs = request.getfixturevalue("tiny_world_logs")
    out = tmp_path / "out"
    result = build_data("world", logs, out)
    spec = result.spec
    assert result.stats["rows_rejected"]["total"] == 0
    for dataset in ("sf", "ad_click", "sequence"):
        assert count_records(out, dataset, "valid") == spec["datasets"][dataset]["row_counts"]["valid"] > 0
    for row in read_split(out, "sequence", "test"):
        assert np.all(row["hist_time_gap"] > 0)  # log1p(gap) > 0 <=> history strictly before
    assert_history_is_strictly_before_the_day(logs, out, BuildConfig())


def assert_history_is_strictly_before_the_day(logs, out, config):
    """Every SF / ad example's history equals the user's clicks of earlier days, rebuilt here
    from the raw logs: no row of the impression's own day or later leaks in."""
    import csv

    def rows(name):
        with open(logs / name, newline="") as fh:
            return list(csv.DictReader(fh))

    titles = {int(r["ad_id"]): r["title"].split()[:config.max_title_tokens] for r in rows("ads.csv")}
    sf_clicks, ad_clicks = {}, {}
    for r in rows("sf_impressions.csv"):
        if r["clicked"] == "1":
            sf_clicks.setdefault(int(r["user_id"]), []).append((int(r["day"]), int(r["ts"]), int(r["impression_id"]), r["sf_keyword"]))
    for r in rows("ad_impressions.csv"):
        if r["clicked"] == "1":
            ad_clicks.setdefault(int(r["user_id"]), []).append((int(r["day"]), int(r["ts"]), int(r["impression_id"]), titles[int(r["ad_id"])]))
    checked = with_history = 0
    for dataset in ("sf", "ad_click"):
        for split in ("train", "valid", "test"):
            for row in read_split(out, dataset, split):
                user, day = int(row["user_id"]), int(row["day"])
                keywords = [k for d, *_, k in sorted(sf_clicks.get(user, []), reverse=True) if d < day]
                tokens = [t for d, *_, title in sorted(ad_clicks.get(user, []), reverse=True) if d < day
                          for t in title]
                assert [t.decode() for t in row["history_sf_keywords"]] == keywords[:config.max_sf_history]
                got = [t.decode() for t in row["history_ad_title_tokens"]]
                assert got == tokens[:config.max_ad_history_tokens]
                checked += 1
                with_history += bool(got)
    assert checked > 1000 and with_history > checked / 2


def test_rows_lost_between_read_and_write_fail_the_build():
    from adpush_core.errors import UserError
    from beam_pipelines.checks import check_rows_conserved

    counts = {"lines_read": 617, "header_lines": 3, "rejected": 3, "written": 597, "label_events": 4,
              "side_table_rows": 10}
    check_rows_conserved(counts, "job counters")  # 617 = 3 + 3 + 597 + 4 + 10
    counts["written"] -= 60
    with pytest.raises(UserError, match=r"lost 60 rows \(job counters: read 617 lines = header_lines 3, "
                                        r"rejected 3, written 537"):
        check_rows_conserved(counts, "job counters")


def test_world_fixture_rows_add_up_in_stats_and_counters(tmp_path):
    result = build_data("world", write_fixture(tmp_path / "logs"), tmp_path / "out", min_count=2, num_shards=2)
    accounting = result.stats["rows_accounting"]
    # 5 headers; users 2 + ads 2 side rows; 5 dead letters; sf 6 + ad 2 + sequence 3 (pv) examples;
    # behaviour: cart + buy are label events
    assert accounting == {"lines_read": 3 + 3 + 9 + 5 + 7, "header_lines": 5, "rejected": 5,
                          "written": 6 + 2 + 3, "label_events": 2, "side_table_rows": 4, "unaccounted": 0}
    assert {k: result.counts[k] for k in accounting if k != "unaccounted"} == {
        k: v for k, v in accounting.items() if k != "unaccounted"}


def test_small_packs_and_slices_write_the_same_bytes(tmp_path, monkeypatch):
    """Tiny PACK_LINES / row slices / history cache: many packed shuffle elements, each shard's
    rows turned into Python values a few at a time (users 1 and 2 share a shard, so its files
    interleave their ids)."""
    from beam_pipelines import impression_columns, write_impression_shards

    logs = write_fixture(tmp_path / "logs")
    a, b = tmp_path / "one_pack", tmp_path / "packs"
    build_data("world", logs, a, min_count=2, num_shards=2)
    monkeypatch.setattr(write_impression_shards, "PACK_LINES", 1)
    monkeypatch.setattr(impression_columns, "_SLICE", 2)
    monkeypatch.setattr(impression_columns, "HISTORY_CACHE_ENTRIES", 2)
    build_data("world", logs, b, min_count=2, num_shards=2)
    assert tree_digest(a) == tree_digest(b)
