"""A shard's impressions built from columns in file order give the bytes and token counts of the
per-user build (reference_user_examples, users in id order) followed by a stable sort by
impression id: what WriteImpressionShards wrote when it built user by user."""
from __future__ import annotations

import random

import pytest

from beam_pipelines.build_sf_examples import reference_user_examples
from beam_pipelines.config import BuildConfig
from beam_pipelines.impression_columns import (AD_COLUMNS, SF_COLUMNS, ImpressionColumns, shard_records,
                                               shard_token_counts)
from test_build_sf_examples import _world


def _per_user_then_sorted(users, ads, config):
    """The per-user path: users in id order, each dataset's records stably sorted by impression
    id; token counts summed over the days kept."""
    records, counts = [], {}
    for user in sorted(users):
        sf, ad, profile = users[user]
        got, by_day = reference_user_examples(user, sf, ad, profile, ads, config)
        records += got
        for day, vocabs in by_day.items():
            if day % 3 == 0:   # the "train" days of these tests
                for vocab, tokens in vocabs.items():
                    bucket = counts.setdefault(vocab, {})
                    for token, n in tokens.items():
                        bucket[token] = bucket.get(token, 0) + n
    ordered = []
    for dataset in ("sf", "ad_click"):
        ordered += sorted((r for r in records if r[0] == dataset), key=lambda r: r[2])
    return ordered, {v: t for v, t in counts.items() if t}


def _columns(users, pieces: int, rng):
    """Every user's lines in a shuffled arrival order, split into ``pieces`` texts per kind."""
    sf_lines = [line for u in users for line in users[u][0]]
    ad_lines = [line for u in users for line in users[u][1]]
    rng.shuffle(sf_lines)
    rng.shuffle(ad_lines)
    sf, ad = ImpressionColumns(SF_COLUMNS), ImpressionColumns(AD_COLUMNS)
    for columns, lines in ((sf, sf_lines), (ad, ad_lines)):
        step = max(1, len(lines) // pieces + 1)
        for start in range(0, len(lines), step):
            columns.add_text("\n".join(lines[start:start + step]).encode())
        columns.finish()
    return sf, ad, sf_lines, ad_lines


def _regrouped(sf_lines, ad_lines, users):
    """The users' lines in the arrival order the columns saw (the tie-break of equal keys)."""
    out = {u: ([], [], users[u][2]) for u in users}
    for line in sf_lines:
        out[int(line.split(",")[1])][0].append(line)
    for line in ad_lines:
        out[int(line.split(",")[1])][1].append(line)
    return out


def _with_ties(users, rng):
    """Copies of some lines with the same impression id, user, day and ts but another keyword /
    position (same label, and the other label), so that only the arrival order separates them
    (in the file order and in a user's click history)."""
    for sf, ad, _ in users.values():
        for lines in (sf, ad):
            for line in list(lines[:4]):
                fields = line.split(",")
                if len(fields) == 7:
                    fields[3] += "x"                                 # another SF keyword
                else:
                    fields[3] = str(rng.choice([1, 2, 3]))          # another ad (title)
                    fields[4] = str(int(fields[4]) % 8 + 1)          # another position
                lines.insert(rng.randrange(len(lines) + 1), ",".join(fields))
                fields[-1] = str(1 - int(fields[-1]))
                lines.insert(rng.randrange(len(lines) + 1), ",".join(fields))
    return users


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("config", [BuildConfig(), BuildConfig(max_sf_history=2, max_ad_history_tokens=5,
                                                               max_query_tokens=1, max_title_tokens=3)])
def test_file_order_build_equals_per_user_build_then_sort(seed, config):
    rng = random.Random(seed)
    ads, users = _world(seed)
    users = _with_ties(users, rng)
    sf, ad, sf_lines, ad_lines = _columns(users, pieces=3, rng=rng)
    profiles = {u: users[u][2] for u in users}
    expected, expected_counts = _per_user_then_sorted(_regrouped(sf_lines, ad_lines, users), ads, config)
    got = list(shard_records(sf, ad, profiles, ads, config))
    assert got == expected
    assert shard_token_counts(sf, ad, profiles, ads, config, lambda day: day % 3 == 0) == expected_counts


def test_history_cache_emptied_midway_gives_the_same_bytes(monkeypatch):
    from beam_pipelines import impression_columns

    rng = random.Random(5)
    ads, users = _world(5)
    sf, ad, sf_lines, ad_lines = _columns(users, pieces=1, rng=rng)
    profiles = {u: users[u][2] for u in users}
    config = BuildConfig()
    expected = list(shard_records(sf, ad, profiles, ads, config))
    monkeypatch.setattr(impression_columns, "HISTORY_CACHE_ENTRIES", 2)
    monkeypatch.setattr(impression_columns, "_SLICE", 3)
    assert list(shard_records(sf, ad, profiles, ads, config)) == expected


def test_arrow_and_python_parsers_give_the_same_columns():
    """A text holding a carriage return (pyarrow.csv would end a row there) goes through the
    Python parser; both give the same codes, values and narrowed dtypes' values."""
    lines = ["7,12,cat_1 a\"b,sp_1 ,0,1511539200,1", "8,13,,sp_2,1,1511539201,0",
             "9223372036854775807,0012,x\ty,sp_1 ,13,5,0"]
    arrow, python = ImpressionColumns(SF_COLUMNS), ImpressionColumns(SF_COLUMNS)
    arrow._python_part = lambda data: pytest.fail("the pyarrow path refused a plain text")
    arrow.add_text("\n".join(lines).encode())
    python.add_text("\n".join(lines + ["10,14,q\rr,sp_3,2,6,1"]).encode())
    arrow.finish()
    python.finish()
    for name in SF_COLUMNS:
        assert python.columns[name][:3].tolist() == arrow.columns[name].tolist(), name
    assert arrow.texts == {"query": ["cat_1 a\"b", "", "x\ty"], "sf_keyword": ["sp_1 ", "sp_2"]}
    assert python.texts["query"][-1] == "q\rr"
    assert arrow.columns["impression_id"].tolist()[2] == 2**63 - 1
    assert arrow.columns["user_id"].tolist() == [12, 13, 12]
