"""Dirty files and misuse: build-data never crashes, never loses a row unseen, never mixes builds."""
from __future__ import annotations

import gzip
import json

import pytest

from adpush_core.errors import UserError
from beam_pipelines.pipeline import build_data
from beam_test_helpers import count_records, dead_letters

START = 1511539200
GOOD = [f"{u},{10 + u},100,{b},{START + 60 * u}\n" for u in range(1, 41) for b in ("pv", "cart")]


def _taobao(tmp_path, lines, name="UserBehavior.csv"):
    path = tmp_path / name
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize("field", ["user", "item", "ts"])
def test_numeric_field_of_any_length_is_a_dead_letter(tmp_path, field):
    huge = "9" * 5000  # int() refuses more than 4,300 digits: used to kill the job
    row = {"user": f"{huge},1,2,pv,{START}", "item": f"1,{huge},2,pv,{START}", "ts": f"1,1,2,pv,{huge}"}[field]
    over = {"user": f"{2**63},1,2,pv,{START}", "item": f"1,{2**63},2,pv,{START}", "ts": f"1,1,2,pv,{2**63}"}[field]
    logs = _taobao(tmp_path, GOOD + [row + "\n", over + "\n", f"1,0000000000000000000000007,2,pv,{START + 5}\n"])
    result = build_data("taobao", [str(logs)], tmp_path / "out", min_count=1)
    dead = {d["line_number"]: d["reason"] for d in dead_letters(tmp_path / "out")}
    assert dead == {81: "integer_out_of_range", 82: "integer_out_of_range"}
    assert sum(result.spec["datasets"]["sequence"]["row_counts"].values()) == 40 + 1  # leading zeros: id 7


def test_aitm_and_world_reject_huge_ids_too(tmp_path):
    from beam_pipelines.dead_letter import BadRow
    from beam_pipelines.sources import aliccp, world

    huge = "1" * 4301
    with pytest.raises(BadRow, match="integer_out_of_range"):
        aliccp.parse_aitm_row(",".join(["0", "0", huge] + ["1"] * 17))
    with pytest.raises(BadRow, match="integer_out_of_range"):
        world.parse_user(f"{huge},1,1,1,1")
    with pytest.raises(BadRow, match="integer_out_of_range"):
        aliccp.parse_skeleton(f"1,1,0,abc,{huge},x")


def test_an_unexpected_parser_exception_is_a_parse_error_dead_letter():
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from beam_pipelines.parse_lines import ParseLines

    with TestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create([("f.csv", 1, [b"4\n", b"0\n"])]) | ParseLines(_reciprocal)
        assert_that(parsed.rows, equal_to([("k", [0.25])]))
        assert_that(parsed.dead_letter, equal_to([("f.csv", 2, "parse_error", "0",
                                                   "ZeroDivisionError: division by zero")]), label="dead")


def _reciprocal(text):
    return "k", 1 / int(text)


def test_non_gzip_file_named_gz_fails_clearly(tmp_path):
    logs = _taobao(tmp_path, GOOD, name="UserBehavior.csv.gz")  # plain text under a .gz name
    with pytest.raises(UserError, match=r"UserBehavior.csv.gz is not_gzip after line 0"):
        build_data("taobao", [str(logs)], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed build replaces nothing


def test_truncated_gzip_is_not_read_silently(tmp_path):
    data = gzip.compress("".join(GOOD).encode())
    logs = tmp_path / "UserBehavior.csv.gz"
    logs.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"UserBehavior.csv.gz is truncated_gzip after line \d+") as err:
        build_data("taobao", [str(logs)], tmp_path / "out")
    staged = str(err.value).rsplit("is in ", 1)[1].split(";")[0]
    dead = dead_letters(staged)
    assert [d["reason"] for d in dead] == ["truncated_gzip"]  # the cut line, under its own reason
    cut = dead[0]
    assert GOOD[cut["line_number"] - 1].startswith(cut["line"]) and cut["line"] != GOOD[cut["line_number"] - 1]
    stats = json.loads(open(f"{staged}/stats.json").read())
    assert stats["rows_read"]["total"] == cut["line_number"]   # complete lines before the cut + the cut
    assert stats["rows_accounting"]["unaccounted"] == 0


def test_everything_rejected_fails_instead_of_an_empty_dataset(shared_data_dir, tmp_path):
    aitm = shared_data_dir / "ali_ccp" / "paddlerec_aitm_ctr_cvr_test.csv"  # not the Taobao layout
    with pytest.raises(UserError, match=r"all 50 rows of --source taobao were rejected \(wrong_column_count 50\)"):
        build_data("taobao", [str(aitm)], tmp_path / "out")


def test_one_file_wholly_rejected_fails(tmp_path):
    good = _taobao(tmp_path, GOOD, name="a.csv")
    other = _taobao(tmp_path, ["click,purchase,101\n", "0,0,1\n"], name="b.csv")
    with pytest.raises(UserError, match=r"every row of .*b.csv was rejected"):
        build_data("taobao", [str(good), str(other)], tmp_path / "out", min_count=1)


def test_rebuild_refuses_a_non_empty_folder_and_replaces_it_atomically_with_overwrite(tmp_path):
    logs = _taobao(tmp_path, GOOD)
    out = tmp_path / "out"
    build_data("taobao", [str(logs)], out, num_shards=4, min_count=1)
    (out / "keep.txt").write_text("user data")
    with pytest.raises(UserError, match="is not empty; pass --overwrite"):
        build_data("taobao", [str(logs)], out, num_shards=2, min_count=1)
    assert (out / "keep.txt").exists()
    result = build_data("taobao", [str(logs)], out, num_shards=2, min_count=1, overwrite=True)
    files = result.spec["datasets"]["sequence"]["files"]
    assert files["train"] == ["sequence/train-00000-of-00002.tfrecord.gz", "sequence/train-00001-of-00002.tfrecord.gz"]
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "sequence").iterdir())
    assert on_disk == sorted(f for split in files.values() for f in split)  # no shard of the old build
    assert not (out / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.build-")]
    rows = result.spec["datasets"]["sequence"]["row_counts"]
    assert sum(count_records(out, "sequence", s) for s in rows) == sum(rows.values()) == 40


def test_readers_use_the_listed_files_not_a_glob(tmp_path):
    from tfrs_models.input import load_spec

    logs = _taobao(tmp_path, GOOD)
    out = tmp_path / "out"
    build_data("taobao", [str(logs)], out, num_shards=2, min_count=1)
    stale = out / "sequence" / "train-00003-of-00004.tfrecord.gz"  # what an older build would leave
    stale.write_bytes((out / "sequence" / "train-00000-of-00002.tfrecord.gz").read_bytes())
    files = load_spec(out).dataset("sequence").split_files("train")
    assert [f.rsplit("/", 1)[1] for f in files] == ["train-00000-of-00002.tfrecord.gz", "train-00001-of-00002.tfrecord.gz"]
    (out / "sequence" / "train-00001-of-00002.tfrecord.gz").unlink()
    with pytest.raises(UserError, match="lists files that do not exist"):
        load_spec(out).dataset("sequence").split_files("train")


def test_dataflow_refuses_local_paths(tmp_path):
    logs = _taobao(tmp_path, GOOD)
    flags = ["--runner=DataflowRunner", "--project=my-project-123", "--region=us-central1",
             "--temp_location=gs://my-bucket/tmp", "--dry_run=True"]
    with pytest.raises(UserError, match=r"--input .* is a local path, which Dataflow workers cannot read"):
        build_data("taobao", [str(logs)], "gs://my-bucket/out", beam_args=flags)
    with pytest.raises(UserError, match=r"--out .* is a local path"):
        build_data("taobao", ["gs://my-bucket/in.csv"], str(tmp_path / "out"), beam_args=flags)


def test_world_dataflow_dry_run_reads_nothing_at_construction():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    result = build_data(
        "world", ["gs://my-bucket/logs"], "gs://my-bucket/out",
        beam_args=["--runner=DataflowRunner", "--project=my-project-123", "--region=us-central1",
                   "--temp_location=gs://my-bucket/tmp", f"--setup_file={repo / 'setup.py'}",
                   "--dry_run=True", "--no_auth", "--sdk_location=container"])
    names = {t.unique_name for t in result.pipeline.runner.proto_pipeline.components.transforms.values()}
    assert {"ReadManifest", "WorldWindow", "WriteImpressionShards", "WriteSequenceShards"} <= names
    assert result.spec is None


def _accounting_holds(stats):
    a = stats["rows_accounting"]
    assert a["lines_read"] == stats["rows_read"]["total"]
    assert a["lines_read"] == a["header_lines"] + a["rejected"] + a["written"] + a["label_events"] + a["side_table_rows"]
    assert a["rejected"] == stats["rows_rejected"]["total"]
    assert a["written"] == sum(sum(s.values()) for s in stats["rows_written"].values())
    assert a["unaccounted"] == 0


def test_read_equals_written_plus_dead_plus_labels_on_every_source(shared_data_dir, tmp_path):
    """The identity, from stats.json alone, on Taobao (with the non-pv count), both Ali-CCP
    layouts and the world (test_world checks the world fixture's figures one by one)."""
    raw = (shared_data_dir / "taobao_user_behavior" / "UserBehavior_usersorted_head_4321.csv").read_text()
    taobao = build_data("taobao", [str(shared_data_dir / "taobao_user_behavior" / "UserBehavior_usersorted_head_4321.csv")],
                        tmp_path / "taobao").stats
    _accounting_holds(taobao)
    in_window = [line.split(",") for line in raw.splitlines() if START <= int(line.split(",")[4]) < START + 9 * 86400]
    assert taobao["rows_accounting"]["label_events"] == sum(1 for r in in_window if r[3] != "pv") > 0
    assert taobao["rows_accounting"]["written"] == sum(1 for r in in_window if r[3] == "pv")
    files = [str(shared_data_dir / "ali_ccp" / f"paddlerec_aitm_ctr_cvr_{s}.csv") for s in ("train", "test")]
    aitm = build_data("aliccp", files, tmp_path / "aitm", min_count=2).stats
    _accounting_holds(aitm)
    assert aitm["rows_accounting"]["header_lines"] == 1 and aitm["rows_accounting"]["side_table_rows"] == 0


def test_compressed_streams_are_read_whole_or_flagged():
    import bz2
    import io

    from beam_pipelines.read_line_batches import _Broken, _bzip2_chunks, _gzip_chunks

    def read(chunks, data):
        try:
            return b"".join(chunks(io.BytesIO(data))), None
        except _Broken as err:
            return None, err.kind

    text = b"".join(line.encode() for line in GOOD)
    gz, bz = gzip.compress(text), bz2.compress(text)
    assert read(_gzip_chunks, gz + gz) == (text + text, None)          # concatenated members
    assert read(_gzip_chunks, gz + b"\0" * 100) == (text, None)        # zero padding after the last
    assert read(_gzip_chunks, b"") == (b"", None)
    assert read(_gzip_chunks, gz[:-9])[1] == "truncated"
    assert read(_gzip_chunks, text)[1] == "not"
    assert read(_gzip_chunks, gz + b"trailing junk")[1] == "corrupt"
    flipped = bytearray(gz)
    flipped[len(gz) // 2] ^= 0xFF
    assert read(_gzip_chunks, bytes(flipped))[1] == "corrupt"
    assert read(_bzip2_chunks, bz + bz) == (text + text, None)
    assert read(_bzip2_chunks, bz[:-10])[1] == "truncated"
    assert read(_bzip2_chunks, text)[1] == "not"
