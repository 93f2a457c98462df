"""build-data on Ali-CCP: the AITM csv samples and a hand-written raw skeleton/common-features set."""
from __future__ import annotations

import json

from beam_pipelines.pipeline import build_data
from beam_pipelines.sources.aliccp import AITM_FIELDS, RAW_FIELDS
from beam_test_helpers import dead_letters, read_split

SPLITS = ("train", "valid", "test")


def test_aitm_csv(shared_data_dir, tmp_path):
    files = [shared_data_dir / "ali_ccp" / f"paddlerec_aitm_ctr_cvr_{s}.csv" for s in ("train", "test")]
    out = tmp_path / "out"
    result = build_data("aliccp", [str(f) for f in files], out, min_count=2)
    lines = [line.split(",") for f in files for line in f.read_text().splitlines() if not line.startswith("click")]
    purchase_without_click = sum(1 for r in lines if r[0] == "0" and r[1] == "1")
    assert purchase_without_click >= 2  # SOURCE.md: train holds two (0,1) rows
    dead = dead_letters(out)
    assert [d["reason"] for d in dead] == ["conversion_without_click"] * purchase_without_click
    rows = {r["row_id"].decode(): r for s in SPLITS for r in read_split(out, "cascade_flat", s)}
    assert len(rows) == len(lines) - purchase_without_click == 48 + 50 - purchase_without_click
    # the first data row of train.csv (line 2): "0,0,85077,60,5,2,5,0,1,2,1,303983,..."
    first = rows["paddlerec_aitm_ctr_cvr_train.csv:2"]
    assert (first["101"], first["121"], first["205"], first["click"]) == (b"85077", b"60", b"303983", 0)
    spec = json.loads((out / "spec.json").read_text())
    assert spec["splits"]["by"] == "hash"
    assert set(spec["datasets"]["cascade_flat"]["features"]) == set(AITM_FIELDS) | {"click", "conversion", "row_id"}
    assert spec["datasets"]["cascade_flat"]["features"]["205"]["group"] == "item"
    assert spec["datasets"]["cascade_flat"]["features"]["301"]["group"] == "context"
    assert sum(spec["datasets"]["cascade_flat"]["row_counts"].values()) == len(rows)
    assert result.stats["rows_read"]["total"] == 49 + 50


def _features(*items):
    return "\x01".join(f"{field}\x02{fid}\x03{value}" for field, fid, value in items)


def test_raw_skeleton_and_common_features(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    skeleton = [
        f"1,1,0,abc,2,{_features(('205', 301, 1.0), ('206', 400, 1.0))}",
        f"2,0,0,abc,1,{_features(('205', 302, 1.0))}",
        f"3,0,1,abc,1,{_features(('205', 303, 1.0))}",   # conversion without click
        f"4,1,1,zzz,1,{_features(('205', 304, 1.0))}",   # unknown common feature index
        f"5,1,1,def,3,{_features(('205', 305, 1.0))}",   # declares 3 features, has 1
    ]
    common = [f"abc,2,{_features(('101', 11, 1.0), ('121', 12, 0.5))}", f"def,1,{_features(('101', 13, 1.0))}"]
    (raw / "sample_skeleton_train.csv").write_text("\n".join(skeleton) + "\n")
    (raw / "common_features_train.csv").write_text("\n".join(common) + "\n")
    out = tmp_path / "out"
    result = build_data("aliccp", [str(raw)], out, min_count=1, split_fractions=(1.0, 0.0, 0.0))
    # 5 skeleton lines = 3 dead letters + 2 examples; the 2 common-features lines are side rows
    assert result.stats["rows_accounting"] == {"lines_read": 7, "header_lines": 0, "rejected": 3, "written": 2,
                                               "label_events": 0, "side_table_rows": 2, "unaccounted": 0}
    assert sorted((d["line_number"], d["reason"]) for d in dead_letters(out)) == [
        (3, "conversion_without_click"), (4, "unknown_common_feature_index"), (5, "feature_count_mismatch")]
    rows = {r["row_id"]: r for r in read_split(out, "cascade_flat", "train")}
    assert sorted(rows) == [b"1", b"2"]
    one = rows[b"1"]
    assert (one["101"], one["121"], one["205"], one["206"], one["301"]) == (b"11", b"12", b"301", b"400", b"0")
    assert (one["click"], one["conversion"]) == (1, 0)
    spec = json.loads((out / "spec.json").read_text())
    assert set(spec["datasets"]["cascade_flat"]["features"]) == set(RAW_FIELDS) | {"click", "conversion", "row_id"}
    assert (out / "vocab" / "101.txt").read_text() == "11\n"  # both rows share common features abc
    assert (out / "vocab" / "205.txt").read_text() == "301\n302\n"
