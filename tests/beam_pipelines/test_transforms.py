"""Each PTransform on TestPipeline(runner='FnApiRunner') with assert_that."""
from __future__ import annotations

import gzip

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.build_sequence_examples import BuildSequenceExamples
from beam_pipelines.build_vocabulary import BuildVocabulary, vocabulary_tokens
from beam_pipelines.config import BuildConfig
from beam_pipelines.parse_behaviour_events import ParseBehaviourEvents
from beam_pipelines.read_line_batches import ReadLineBatches
from beam_pipelines.split_by_day import SplitByDay, SplitByHash, day_splits, hash_split, make_window
from beam_pipelines.write_dead_letters import WriteDeadLetters
from beam_pipelines.write_deterministic_tfrecords import WriteDeterministicTFRecords

START = 1511539200  # 2017-11-25 00:00 +08:00


def test_read_line_batches_numbers_lines(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"x\ny\r\n\nz")
    with gzip.open(tmp_path / "b.csv.gz", "wb") as fh:
        fh.write(b"1\n2\n")
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv.gz")
    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | ReadLineBatches([str(tmp_path / "*.csv*")], batch_size=2)
        assert_that(batches, equal_to([(a, 1, [b"x\n", b"y\r\n"]), (a, 3, [b"\n", b"z"]),
                                       (b, 1, [b"1\n", b"2\n"])]))


def test_parse_behaviour_events_dead_letters_every_bad_kind():
    lines = [
        b"1,10,100,pv," + str(START + 5).encode() + b"\n",            # 1 ok
        b"1,11,100,cart," + str(START + 6).encode() + b"\n",          # 2 ok
        b"2,10,100,pv\n",                                              # 3 wrong column count
        b"2,x,100,pv," + str(START).encode() + b"\n",                  # 4 non-integer id
        b"2,10,100,click," + str(START).encode() + b"\n",              # 5 unknown behaviour
        b"2,10,100,pv,1505000000\n",                                   # 6 outside window
        b"\n",                                                         # 7 empty line
        b"2,10,\xff\xfe,pv,1511539200\n",                              # 8 undecodable
        b"2,10,100,buy," + str(START + 9 * 86400).encode() + b"\n",   # 9 outside (end is open)
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        window = beam.pvalue.AsSingleton(p | "W" >> beam.Create([make_window(START, START, START + 9 * 86400)]))
        parsed = p | beam.Create([("f.csv", 1, lines)]) | ParseBehaviourEvents(window)
        assert_that(parsed.rows, equal_to([(1, [(START + 5, 10, 100, 0), (START + 6, 11, 100, 1)])]))
        assert_that(parsed.dead_letter | beam.Map(lambda d: (d[1], d[2])), equal_to([
            (3, "wrong_column_count"), (4, "non_integer_field"), (5, "unknown_behavior"),
            (6, "timestamp_outside_window"), (7, "empty_line"), (8, "undecodable_bytes"),
            (9, "timestamp_outside_window")]), label="dead")
        # 9 lines: no header, 7 rejected, 2 parsed of which 1 (the cart) a label event
        assert_that(parsed.read, equal_to([("f.csv", (9, 0, 7, 2, 1, 0))]), label="read")


def test_day_splits_by_hand():
    assert day_splits(9, BuildConfig()) == ["train"] * 4 + ["valid"] + ["test"] * 4
    assert day_splits(10, BuildConfig()) == ["train"] * 5 + ["valid"] + ["test"] * 4
    assert day_splits(9, BuildConfig(test_days=1)) == ["train"] * 7 + ["valid", "test"]
    assert day_splits(9, BuildConfig(test_days=2, valid_days=0)) == ["train"] * 7 + ["test"] * 2
    assert day_splits(3, BuildConfig()) == ["train", "valid", "test"]


def test_split_by_day_and_hash():
    config = BuildConfig()
    with TestPipeline(runner="FnApiRunner") as p:
        window = beam.pvalue.AsSingleton(p | "W" >> beam.Create([make_window(0, 0, 9 * 86400)]))
        out = p | beam.Create([(0, "a"), (3, "b"), (4, "c"), (5, "d"), (8, "e")]) | SplitByDay(window, config)
        assert_that(out, equal_to([("train", "a"), ("train", "b"), ("valid", "c"), ("test", "d"), ("test", "e")]))
        hashed = p | "H" >> beam.Create([("k1", 1), ("k2", 2)]) | SplitByHash(config)
        assert_that(hashed, equal_to([(hash_split("k1", config), 1), (hash_split("k2", config), 2)]),
                    label="hash")
    splits = [hash_split(str(i), config) for i in range(2000)]
    assert 0.45 < splits.count("train") / 2000 < 0.55 and 0.07 < splits.count("valid") / 2000 < 0.13


def test_build_vocabulary_min_count_and_order(tmp_path):
    assert vocabulary_tokens({"b": 3, "a": 3, "c": 5, "d": 1, "": 9, "x\ny": 9}, 2) == ["c", "a", "b"]
    with TestPipeline(runner="FnApiRunner") as p:
        counts = p | beam.Create([("token", {"red": 2, "shoes": 1}), ("token", {"shoes": 2, "hat": 1}),
                                  ("category", {"7": 1})])
        sizes = counts | BuildVocabulary(str(tmp_path), ["token", "category", "position"], min_count=2)
        assert_that(sizes, equal_to([("token", 2), ("category", 0), ("position", 0)]))
    assert (tmp_path / "vocab" / "token.txt").read_text() == "shoes\nred\n"
    assert (tmp_path / "vocab" / "category.txt").read_text() == ""
    assert (tmp_path / "vocab" / "position.txt").read_text() == ""


def test_write_deterministic_tfrecords(tmp_path):
    import tensorflow as tf

    records = [("train", ("sf", str(k), (k,), f"r{k}".encode(), (k % 2,))) for k in range(10)]
    with TestPipeline(runner="FnApiRunner") as p:
        summary = p | beam.Create(records) | WriteDeterministicTFRecords(str(tmp_path), ["sf"], 3)
        summary = summary | beam.Filter(lambda s: s[1] == "train") | beam.Map(lambda s: s[2])
        assert_that(summary | beam.CombineGlobally(sum), equal_to([10]))
    files = sorted((tmp_path / "sf").glob("*.tfrecord.gz"))
    assert len(files) == 9  # 3 splits x 3 shards, empty ones included
    got = []
    for shard in sorted((tmp_path / "sf").glob("train-*")):
        keys = [int(r.numpy()[1:]) for r in tf.data.TFRecordDataset(str(shard), compression_type="GZIP")]
        assert keys == sorted(keys)  # sorted within a shard
        got += keys
    assert sorted(got) == list(range(10))
    assert list(tf.data.TFRecordDataset(str(tmp_path / "sf" / "test-00000-of-00003.tfrecord.gz"),
                                        compression_type="GZIP")) == []


def test_build_sequence_examples_labels_and_tokens():
    events = [(START + 10, 5, 50, 0), (START + 20, 5, 50, 2), (START + 86400, 6, 60, 0)]
    with TestPipeline(runner="FnApiRunner") as p:
        window = beam.pvalue.AsSingleton(p | "W" >> beam.Create([make_window(START, START, START + 9 * 86400)]))
        built = p | beam.Create([(7, [events[:2], events[2:]])]) | BuildSequenceExamples(window, 50)
        # (day, user, ts, click, conversion): the first pv is favourited later, the second is not
        assert_that(built.records | beam.Map(lambda r: (r[0], r[1][2][0], r[1][2][1], r[1][4])),
                    equal_to([(0, 7, START + 10, (1, 0)), (1, 7, START + 86400, (0, 0))]))
        tokens = built.tokens | beam.Filter(lambda t: t[1][0] == "item_id")
        assert_that(tokens, equal_to([(0, ("item_id", {"5": 2})), (1, ("item_id", {"6": 1}))]), label="tok")


def test_write_dead_letters(tmp_path):
    import json

    dead = [("b.csv", 2, "empty_line", "", None), ("a.csv", 9, "empty_line", "", None),
            ("a.csv", 1, "bad", "x,\\xff", "ValueError: x")]
    with TestPipeline(runner="FnApiRunner") as p:
        counts = p | beam.Create(dead) | WriteDeadLetters(str(tmp_path), num_shards=1)
        assert_that(counts, equal_to([("empty_line", 2, "dead_letter/empty_line-00000-of-00001.jsonl"),
                                      ("bad", 1, "dead_letter/bad-00000-of-00001.jsonl")]))
    rows = [json.loads(line) for line in
            (tmp_path / "dead_letter" / "empty_line-00000-of-00001.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line_number"], r["detail"]) for r in rows] == [("a.csv", 9, None), ("b.csv", 2, None)]
    bad = json.loads((tmp_path / "dead_letter" / "bad-00000-of-00001.jsonl").read_text())
    assert bad == {"file": "a.csv", "line_number": 1, "reason": "bad", "line": "x,\\xff", "detail": "ValueError: x"}


def test_write_dead_letters_shards_one_reason_over_several_files(tmp_path):
    """One reason is not one hot key: its dead letters spread over the shards, each sorted."""
    import json
    import zlib

    dead = [("f.csv", n, "empty_line", "", None) for n in range(1, 201)]
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create(dead) | WriteDeadLetters(str(tmp_path), num_shards=4)
    files = sorted((tmp_path / "dead_letter").glob("empty_line-*-of-00004.jsonl"))
    assert len(files) == 4
    seen = []
    for path in files:
        shard = int(path.name.split("-")[1])
        numbers = [json.loads(line)["line_number"] for line in path.read_text().splitlines()]
        assert numbers == sorted(numbers)
        assert all(zlib.crc32(f"f.csv:{n}".encode()) % 4 == shard for n in numbers)
        seen += numbers
    assert sorted(seen) == list(range(1, 201))


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.6, 0.6, -0.2)])
def test_config_rejects_bad_fractions(bad):
    from adpush_core.errors import UserError

    with pytest.raises(UserError):
        BuildConfig(split_fractions=bad)


def test_make_window_counts_partial_utc_days():
    # world window starting 16:00 UTC for 8 days touches 9 UTC days (contracts §1 day formula)
    start = 1511539200
    assert make_window(start // 86400 * 86400, start, start + 8 * 86400)[3] == 9
    assert make_window(start, start, start + 9 * 86400) == (start, start, start + 9 * 86400, 9)


@pytest.mark.parametrize("with_ads", [False, True])
def test_write_sequence_shards_equals_build_split_write(tmp_path, with_ads):
    """The fused per-shard writer gives the same bytes and train tokens as the composed path,
    with or without a catalogue (the world's ads: the candidate's title tokens; item 12 is
    missing from it and gets an empty title)."""
    import tensorflow as tf

    from beam_pipelines.write_sequence_shards import WriteSequenceShards

    config = BuildConfig(num_shards=2, max_history=3)
    day = 86400
    users = [(u, [(START + 100 * u + k * day // 2, 10 + (k + u) % 3, 1, k % 4 if k % 5 else 0) for k in range(12)])
             for u in range(1, 6)]
    composed, fused = tmp_path / "composed", tmp_path / "fused"
    with TestPipeline(runner="FnApiRunner") as p:
        window = beam.pvalue.AsSingleton(p | "W" >> beam.Create([make_window(START, START, START + 9 * day)]))
        parsed = p | beam.Create(users)
        ads = (beam.pvalue.AsDict(p | "Ads" >> beam.Create([(10, ("1", ("red", "shoe"))), (11, ("1", ("blue",)))]))
               if with_ads else None)
        built = (parsed | beam.MapTuple(lambda u, events: (u, [events]))
                 | BuildSequenceExamples(window, 3, ads=ads, max_title_tokens=config.max_title_tokens))
        _ = (built.records | SplitByDay(window, config)
             | WriteDeterministicTFRecords(str(composed), ["sequence"], 2))
        train_tokens = (built.tokens | "SplitTokens" >> SplitByDay(window, config)
                        | beam.Filter(lambda s: s[0] == "train") | beam.Values()
                        | "Sum1" >> beam.CombinePerKey(_merge) | "Item1" >> beam.Filter(lambda kv: kv[0] == "item_id"))
        shards = parsed | WriteSequenceShards(str(fused), window, config, ads=ads)
        fused_tokens = (shards.tokens | "Sum2" >> beam.CombinePerKey(_merge)
                        | "Item2" >> beam.Filter(lambda kv: kv[0] == "item_id"))
        # train = days 0-3: users' events k = 0..7 -> items 10 + (k + u) % 3, eight per user
        expected = {}
        for u, events in users:
            for ts, item, _, _ in events:
                if ts < START + 4 * day:
                    expected[str(item)] = expected.get(str(item), 0) + 1
        assert_that(train_tokens, equal_to([("item_id", expected)]), label="composed_tokens")
        assert_that(fused_tokens, equal_to([("item_id", expected)]), label="fused_tokens")
        assert_that(shards.summaries | beam.Map(lambda s: s[2]) | beam.CombineGlobally(sum),
                    equal_to([sum(1 for _, ev in users for e in ev if e[3] == 0)]), label="rows")
    for path in sorted(composed.rglob("*.tfrecord.gz")):
        # the records must be identical; gzip framing of the two writers may differ
        assert gzip.decompress(path.read_bytes()) == gzip.decompress(
            (fused / path.relative_to(composed)).read_bytes()), path.name
    titles = {}
    for path in sorted(fused.rglob("*.tfrecord.gz")):
        for raw in tf.data.TFRecordDataset(str(path), compression_type="GZIP").as_numpy_iterator():
            context = tf.train.SequenceExample.FromString(raw).context.feature
            item = context["item_id"].bytes_list.value[0]
            titles[item] = (list(context["title_tokens"].bytes_list.value)
                            if "title_tokens" in context else None)
    if with_ads:
        assert titles == {b"10": [b"red", b"shoe"], b"11": [b"blue"], b"12": []}
    else:
        assert set(titles.values()) == {None}


def _merge(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out
