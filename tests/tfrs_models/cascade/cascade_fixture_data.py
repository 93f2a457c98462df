"""Writes a tiny ``sequence`` dataset (SequenceExample TFRecords + spec.json + vocab files)
following docs/contracts.md §2/§5, with a planted signal where local context matters:

* click: the user's history holds an event of the candidate's category whose *next* event is a
  ``cart`` (a context-aware pattern: the category alone is not enough);
* conversion: click and the candidate item itself was ``fav``-ed in the last 4 events.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BEHAVIOURS = ["pv", "cart", "fav", "buy"]
TITLE_TOKENS = ["good", "plain"] + [f"w{k}" for k in range(5)]


def fixture_title(item: int, n_items: int) -> list[str]:
    """The catalogue title of a fixture item (``titles=True``): ``good`` for the first third of
    the items (the context dataset's good items), then a filler word; the last item has none."""
    if item == n_items - 1:
        return []
    return ["good" if item < n_items // 3 else "plain", f"w{item % 5}"]


def _title_feature(tf, item: int, n_items: int):
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[t.encode() for t in fixture_title(item, n_items)]))


def _add_title_spec(spec: dict, vocabs: dict, out: Path) -> None:
    vocabs["title_token"] = _vocab(out / "vocab/title_token.txt", TITLE_TOKENS)
    spec["datasets"]["sequence"]["features"]["title_tokens"] = {
        "dtype": "string", "kind": "varlen", "max_length": 4, "vocab": "title_token",
        "group": "item", "role": "feature", "part": "context"}


def _vocab(path: Path, tokens: list[str]) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in tokens))
    return {"file": f"vocab/{path.name}", "size": len(tokens), "num_oov_buckets": 1, "min_count": 1}


def _bytes(values):
    return {"bytes_list": [v.encode() for v in values]}


def write_sequence_dataset(out: Path, *, rows: int = 256, max_length: int = 12, seed: int = 0,
                           n_users: int = 40, n_items: int = 30, n_categories: int = 6,
                           titles: bool = False) -> Path:
    """``titles``: the candidate's ``title_tokens`` (fixture_title) in the context, as the world
    source builds them; the rows and labels are the same as without."""
    import tensorflow as tf

    out = Path(out)
    rng = np.random.default_rng(seed)
    vocabs = {
        "user_id": _vocab(out / "vocab/user_id.txt", [str(u) for u in range(n_users)]),
        "item_id": _vocab(out / "vocab/item_id.txt", [str(i) for i in range(n_items)]),
        "category": _vocab(out / "vocab/category.txt", [str(c) for c in range(n_categories)]),
        "behavior": _vocab(out / "vocab/behavior.txt", BEHAVIOURS),
        "age_bucket": _vocab(out / "vocab/age_bucket.txt", [str(a) for a in range(7)]),
        "gender": _vocab(out / "vocab/gender.txt", ["0", "1", "2"]),
    }

    def example(user, ts):
        length = int(rng.integers(2, max_length + 4))  # some longer than max_length: truncation
        items = rng.integers(0, n_items, size=length)
        cats = items % n_categories
        beh = rng.choice(4, size=length, p=[0.6, 0.2, 0.15, 0.05])
        cand = int(rng.integers(0, n_items))
        cand_cat = cand % n_categories
        kept = slice(max(0, length - max_length), length)
        k_cats, k_beh, k_items = cats[kept], beh[kept], items[kept]
        click = any(k_cats[t] == cand_cat and k_beh[t + 1] == 1 for t in range(len(k_cats) - 1))
        click = click if rng.random() > 0.05 else not click
        conv = click and any(k_items[t] == cand and k_beh[t] == 2 for t in range(max(0, len(k_items) - 4), len(k_items)))
        conv = conv or (click and rng.random() < 0.1)
        gaps = np.log1p(np.sort(rng.integers(1, 10_000, size=length))[::-1].astype(np.float32))
        ctx = tf.train.Features(feature={
            "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(user).encode()])),
            "age_bucket": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(user % 7).encode()])),
            "gender": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(user % 3).encode()])),
            "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(cand).encode()])),
            "category": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(cand_cat).encode()])),
            "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(click)])),
            "conversion": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(conv)])),
            "ts": tf.train.Feature(int64_list=tf.train.Int64List(value=[ts])),
            "day": tf.train.Feature(int64_list=tf.train.Int64List(value=[ts // 86400])),
        })
        if titles:
            ctx.feature["title_tokens"].CopyFrom(_title_feature(tf, cand, n_items))

        def flist(values, kind):
            if kind == "bytes":
                feats = [tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode() if not isinstance(v, str) else v.encode()])) for v in values]
            else:
                feats = [tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)])) for v in values]
            return tf.train.FeatureList(feature=feats)

        lists = tf.train.FeatureLists(feature_list={
            "hist_item_id": flist(items, "bytes"),
            "hist_category": flist(cats, "bytes"),
            "hist_behavior": flist([BEHAVIOURS[b] for b in beh], "bytes"),
            "hist_time_gap": flist(gaps, "float"),
        })
        return tf.train.SequenceExample(context=ctx, feature_lists=lists).SerializeToString(), click, conv

    files, counts, rates = {}, {}, {}
    for split, n in (("train", rows), ("valid", rows // 4), ("test", rows // 4)):
        path = out / "sequence" / f"{split}-00000-of-00001.tfrecord.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        clicks = convs = 0
        with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
            for i in range(n):
                user = int(rng.integers(0, n_users))
                record, click, conv = example(user, 1_600_000_000 + i * 37 + {"train": 0, "valid": 1, "test": 2}[split] * 10**6)
                writer.write(record)
                clicks += click
                convs += conv
        files[split] = f"sequence/{split}-*-of-*.tfrecord.gz"
        counts[split] = n
        rates[split] = {"click": clicks / n, "conversion": convs / n}

    spec = json.loads(_sequence_spec_template(max_length))
    if titles:
        _add_title_spec(spec, vocabs, out)
    spec["vocabularies"] = vocabs
    spec["datasets"]["sequence"].update(files=files, row_counts=counts, label_rates=rates)
    # user_id is both a model feature and a join key in the contract.
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    return out


def write_flat_dataset(out: Path, *, rows: int = 96, seed: int = 0) -> Path:
    """A tiny Ali-CCP-like ``cascade_flat`` dataset (tf.train.Example, one feature per field).

    Click when user field 101 and item field 205 agree in parity; conversion for a third of those.
    """
    import tensorflow as tf

    out = Path(out)
    rng = np.random.default_rng(seed)
    fields = {"101": 20, "121": 5, "205": 30, "206": 8, "301": 3}
    vocabs = {f: _vocab(out / f"vocab/{f}.txt", [str(i) for i in range(n)]) for f, n in fields.items()}
    files = {}
    for split, n in (("train", rows), ("valid", rows // 4), ("test", rows // 4)):
        path = out / "cascade_flat" / f"{split}-00000-of-00001.tfrecord.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
            for i in range(n):
                values = {f: int(rng.integers(0, size)) for f, size in fields.items()}
                click = int(values["101"] % 2 == values["205"] % 2)
                conv = int(click and values["206"] < 3)
                feats = {f: tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode()]))
                         for f, v in values.items()}
                feats["click"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[click]))
                feats["conversion"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[conv]))
                feats["row_id"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{split}{i}".encode()]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
        files[split] = f"cascade_flat/{split}-*-of-*.tfrecord.gz"
    group = {"1": "user", "2": "item", "3": "context"}
    features = {f: {"dtype": "string", "kind": "scalar", "vocab": f, "group": group[f[0]], "role": "feature"}
                for f in fields}
    features |= {"click": {"dtype": "int64", "kind": "scalar", "role": "label", "group": "label"},
                 "conversion": {"dtype": "int64", "kind": "scalar", "role": "label", "group": "label"},
                 "row_id": {"dtype": "string", "kind": "scalar", "role": "key", "group": "key"}}
    spec = {"format_version": 1, "source": "aliccp", "vocabularies": vocabs,
            "datasets": {"cascade_flat": {"proto": "tf.train.Example", "compression": "GZIP",
                                          "files": files, "labels": ["click", "conversion"],
                                          "key": ["row_id"], "features": features}}}
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    return out


def write_context_dataset(out: Path, *, rows: int = 3000, max_length: int = 20, seed: int = 0,
                          n_items: int = 60, n_categories: int = 6, titles: bool = False) -> Path:
    """A small ``sequence`` dataset with the world's story (abtest/world/behaviour.py) in
    miniature, to check that the models *learn*, not only run:

    * the candidate's category is, with probability 0.6, one of the last 5 events' (local context);
    * click ~ sigmoid(−2.2 + 1.3 · #cart/fav among the last 5 events in the candidate's category
      + 0.8 · [item is a "good" item]), so longer, busier histories click more;
    * conversion = click and a Bernoulli(0.5 if the item is good, else 0.1);
    * ``hist_time_gap`` is log1p(seconds), about 4–13 like the Beam output: a large positive
      float that has to be standardised.

    Splits are i.i.d. (train ``rows``, valid and test ``rows // 3``), so a model that learns
    anything scores well above 0.5 on test. With ``titles`` the candidate's ``title_tokens``
    (fixture_title) say whether it is good: with many items (few rows each) only the title
    carries the item term across items, as the world's title appeal does.
    """
    import tensorflow as tf

    out = Path(out)
    rng = np.random.default_rng(seed)
    vocabs = {
        "user_id": _vocab(out / "vocab/user_id.txt", [str(u) for u in range(50)]),
        "item_id": _vocab(out / "vocab/item_id.txt", [str(i) for i in range(n_items)]),
        "category": _vocab(out / "vocab/category.txt", [str(c) for c in range(n_categories)]),
        "behavior": _vocab(out / "vocab/behavior.txt", BEHAVIOURS),
        "age_bucket": _vocab(out / "vocab/age_bucket.txt", [str(a) for a in range(7)]),
        "gender": _vocab(out / "vocab/gender.txt", ["0", "1", "2"]),
    }

    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))

    def int_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def example(user: int, ts: int):
        length = int(rng.integers(1, max_length + 1))
        cats = rng.integers(0, n_categories, size=length)
        items = cats + n_categories * rng.integers(0, n_items // n_categories, size=length)
        beh = rng.choice(4, size=length, p=[0.6, 0.2, 0.15, 0.05])
        cand_cat = int(rng.choice(cats[-5:])) if rng.random() < 0.6 else int(rng.integers(0, n_categories))
        cand = cand_cat + n_categories * int(rng.integers(0, n_items // n_categories))
        good = cand < n_items // 3
        recent = int(np.sum((cats[-5:] == cand_cat) & ((beh[-5:] == 1) | (beh[-5:] == 2))))
        click = rng.random() < 1 / (1 + np.exp(-(-2.2 + 1.3 * recent + 0.8 * good)))
        conv = bool(click and rng.random() < (0.5 if good else 0.1))
        gaps = np.log1p(np.sort(rng.integers(60, 500_000, size=length))[::-1].astype(np.float32))
        ctx = tf.train.Features(feature={
            "user_id": bytes_feature(user), "age_bucket": bytes_feature(user % 7),
            "gender": bytes_feature(user % 3), "item_id": bytes_feature(cand),
            "category": bytes_feature(cand_cat), "click": int_feature(click),
            "conversion": int_feature(conv), "ts": int_feature(ts), "day": int_feature(ts // 86400)})
        if titles:
            ctx.feature["title_tokens"].CopyFrom(_title_feature(tf, cand, n_items))

        def flist(values):
            return tf.train.FeatureList(feature=[bytes_feature(v) for v in values])

        lists = tf.train.FeatureLists(feature_list={
            "hist_item_id": flist(items), "hist_category": flist(cats),
            "hist_behavior": flist([BEHAVIOURS[b] for b in beh]),
            "hist_time_gap": tf.train.FeatureList(feature=[
                tf.train.Feature(float_list=tf.train.FloatList(value=[float(g)])) for g in gaps])})
        return tf.train.SequenceExample(context=ctx, feature_lists=lists).SerializeToString(), click, conv

    files, counts, rates = {}, {}, {}
    for split_index, (split, n) in enumerate((("train", rows), ("valid", rows // 3), ("test", rows // 3))):
        path = out / "sequence" / f"{split}-00000-of-00001.tfrecord.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        clicks = convs = 0
        with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
            for i in range(n):
                record, click, conv = example(int(rng.integers(0, 50)), 1_600_000_000 + split_index * 10**6 + i)
                writer.write(record)
                clicks, convs = clicks + click, convs + conv
        files[split] = f"sequence/{split}-*-of-*.tfrecord.gz"
        counts[split] = n
        rates[split] = {"click": clicks / n, "conversion": convs / n}
    spec = json.loads(_sequence_spec_template(max_length))
    if titles:
        _add_title_spec(spec, vocabs, out)
    spec["vocabularies"] = vocabs
    ds = spec["datasets"]["sequence"]
    ds.update(files=files, row_counts=counts, label_rates=rates)
    (out / "spec.json").write_text(json.dumps(spec, indent=1))
    return out


def _sequence_spec_template(max_length: int) -> str:
    def feat(dtype, role="feature", **kw):
        return {"dtype": dtype, "kind": "scalar", "role": role, **kw}

    hist = {"kind": "varlen", "max_length": max_length, "group": "history", "role": "feature", "part": "sequence"}
    features = {
        "user_id": feat("string", vocab="user_id", group="user", part="context"),
        "age_bucket": feat("string", vocab="age_bucket", group="user_profile", part="context"),
        "gender": feat("string", vocab="gender", group="user_profile", part="context"),
        "item_id": feat("string", vocab="item_id", group="item", part="context"),
        "category": feat("string", vocab="category", group="item", part="context"),
        "click": feat("int64", role="label", part="context"),
        "conversion": feat("int64", role="label", part="context"),
        "ts": feat("int64", role="key", part="context"),
        "day": feat("int64", role="meta", part="context"),
        "hist_item_id": {"dtype": "string", "vocab": "item_id", **hist},
        "hist_category": {"dtype": "string", "vocab": "category", **hist},
        "hist_behavior": {"dtype": "string", "vocab": "behavior", **hist},
        "hist_time_gap": {"dtype": "float32", **hist},
    }
    return json.dumps({"format_version": 1, "source": "world", "vocabularies": {},
                       "datasets": {"sequence": {
                           "proto": "tf.train.SequenceExample", "compression": "GZIP",
                           "labels": ["click", "conversion"], "key": ["user_id", "ts"],
                           "features": features}}})
