"""load_spec: one reader of spec.json for both families; bad input is a UserError naming it."""
from __future__ import annotations

import json
import shutil

import pytest

from adpush_core.errors import UserError
from tfrs_models.input import load_spec


def _copy(sp_data, tmp_path, edit=None):
    out = tmp_path / "out"
    shutil.copytree(sp_data[0], out)
    if edit is not None:
        raw = json.loads((out / "spec.json").read_text())
        edit(raw)
        (out / "spec.json").write_text(json.dumps(raw))
    return out


def test_spec_errors_name_the_file_and_field(sp_data, tmp_path):
    with pytest.raises(UserError, match="spec.json does not exist; run `adpush build-data`"):
        load_spec(tmp_path / "nowhere")
    with pytest.raises(UserError, match="format_version 2, expected 1"):
        load_spec(_copy(sp_data, tmp_path / "a", lambda r: r.update(format_version=2)))
    with pytest.raises(UserError, match=r"datasets.sf.compression is 'BZIP'"):
        load_spec(_copy(sp_data, tmp_path / "b", lambda r: r["datasets"]["sf"].update(compression="BZIP")))
    with pytest.raises(UserError, match=r"datasets.sf.compression is None"):
        load_spec(_copy(sp_data, tmp_path / "c", lambda r: r["datasets"]["sf"].pop("compression")))
    with pytest.raises(UserError, match=r"features.query_tokens is a list but has no max_length"):
        load_spec(_copy(sp_data, tmp_path / "d", lambda r: r["datasets"]["sf"]["features"]
                        ["query_tokens"].pop("max_length")))
    with pytest.raises(UserError, match=r"a required field is missing: 'files'"):
        load_spec(_copy(sp_data, tmp_path / "e", lambda r: r["datasets"]["sf"].pop("files")))
    spec = load_spec(sp_data[0])
    with pytest.raises(UserError, match=r"has no dataset 'sequence' \(it has \['ad_click', 'sf'\]\)"):
        spec.dataset("sequence")
    with pytest.raises(UserError, match=r"dataset 'sf' .* lacks the labels \['conversion'\]"):
        spec.dataset("sf", labels=("clicked", "conversion"))
    with pytest.raises(UserError, match=r"dataset 'sf' .* has no split 'holdout'"):
        spec.dataset("sf").split_files("holdout")


def test_cascade_dataset_choice(sp_data):
    from tfrs_models.cascade.data import load_dataset

    with pytest.raises(UserError, match=r"no cascade dataset \(sequence or cascade_flat"):
        load_dataset(sp_data[0])


def test_one_spec_object_serves_both_families(sp_spec):
    sf = sp_spec.dataset("sf")
    assert sf.root == sp_spec.root and sf.vocabularies is sp_spec.vocabularies
    assert sf.compression == "GZIP" and sf.proto == "tf.train.Example"
    assert sf.sequence_length == 0 and sf.sequence_features == []
    assert [f.name for f in sf.model_features(("query",))] == ["query_tokens"]
    assert len(sf.model_features()) == len(sf.context_features) > 1
