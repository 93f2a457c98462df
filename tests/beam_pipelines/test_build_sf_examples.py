"""build_user_examples (entries encoded once, joined in key order) gives the bytes and counts of
the feature-by-feature reference, and the bytes of tf.train.Example's deterministic encoding."""
from __future__ import annotations

import random

import pytest

from beam_pipelines.build_sf_examples import EntryCache, build_user_examples, reference_user_examples
from beam_pipelines.config import BuildConfig


def _world(seed: int):
    rng = random.Random(seed)
    ads = {a: (str(rng.randrange(12)), tuple(f"t{rng.randrange(40)}" for _ in range(rng.randrange(0, 20))))
           for a in range(1, 60)}
    users = {}
    for user in rng.sample(range(1, 10**7), 8):
        sf, ad = [], []
        for _ in range(rng.randrange(0, 40)):
            day = rng.randrange(6)
            ts = 1_700_000_000 + day * 86400 + rng.randrange(86400)
            query = " ".join(rng.choice(["cat_3", "cat_007", "cat_x", "red", "shoe", "cat_12"])
                             for _ in range(rng.randrange(0, 7)))
            imp = rng.choice([rng.randrange(100), rng.randrange(1 << 21), rng.randrange(1 << 40)])
            sf.append(f"{imp},{user},{query},sp_{rng.randrange(9)},{day},{ts},{rng.randrange(2)}")
        for _ in range(rng.randrange(0, 60)):
            day = rng.randrange(6)
            ts = 1_700_000_000 + day * 86400 + rng.randrange(86400)
            query = " ".join(rng.choice(["cat_3", "blue", "bag"]) for _ in range(rng.randrange(0, 5)))
            imp = rng.randrange(1 << 35)
            ad.append(f"{imp},{user},{query},{rng.choice(list(ads))},{rng.randrange(1, 9)},{day},{ts},"
                      f"{rng.randrange(2)}")
        users[user] = (sf, ad, (str(rng.randrange(7)), str(rng.randrange(3)), str(rng.randrange(4)),
                                str(rng.randrange(5))))
    return ads, users


def _nonempty(counts):
    return {day: {v: t for v, t in vocabs.items() if t} for day, vocabs in counts.items()}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("config", [BuildConfig(), BuildConfig(max_sf_history=2, max_ad_history_tokens=5,
                                                               max_query_tokens=1, max_title_tokens=3)])
def test_fast_build_equals_reference(seed, config):
    ads, users = _world(seed)
    cache = EntryCache(ads, config)
    for user, (sf, ad, profile) in users.items():
        fast, fast_counts = build_user_examples(user, sf, ad, profile, ads, config, cache)
        slow, slow_counts = reference_user_examples(user, sf, ad, profile, ads, config)
        assert fast == slow
        assert _nonempty(fast_counts) == _nonempty(slow_counts)


def test_records_are_tf_examples_with_deterministic_bytes():
    import tensorflow as tf

    ads, users = _world(7)
    user, (sf, ad, profile) = next((u, v) for u, v in users.items() if v[0] and v[1])
    records, _ = build_user_examples(user, sf, ad, profile, ads, BuildConfig())
    for dataset, _day, impression_id, payload, clicked in records:
        ex = tf.train.Example.FromString(payload)
        assert ex.SerializeToString(deterministic=True) == payload
        assert ex.features.feature["impression_id"].int64_list.value == [impression_id]
        assert ex.features.feature["clicked"].int64_list.value == [clicked]
        assert ("sf_keyword" in ex.features.feature) == (dataset == "sf")
