"""A random small world of SF / ad impression lines (shared with test_impression_columns), and
the records built from it are tf.train.Example's deterministic encoding."""
from __future__ import annotations

import random

from beam_pipelines.config import BuildConfig
from beam_pipelines.impression_columns import shard_records


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


def test_records_are_tf_examples_with_deterministic_bytes():
    import tensorflow as tf

    from test_impression_columns import _columns

    ads, users = _world(7)
    sf, ad, _, _ = _columns(users, pieces=1, rng=random.Random(7))
    profiles = {u: users[u][2] for u in users}
    datasets = set()
    for dataset, _day, impression_id, payload, clicked in shard_records(sf, ad, profiles, ads, BuildConfig()):
        ex = tf.train.Example.FromString(payload)
        assert ex.SerializeToString(deterministic=True) == payload
        assert ex.features.feature["impression_id"].int64_list.value == [impression_id]
        assert ex.features.feature["clicked"].int64_list.value == [clicked]
        assert ("sf_keyword" in ex.features.feature) == (dataset == "sf")
        datasets.add(dataset)
    assert datasets == {"sf", "ad_click"}
