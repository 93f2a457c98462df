"""A tiny synthetic SF + ad-click dataset written exactly as docs/contracts.md §2/§5 describe.

Planted signal: every user prefers one SP facet. An SF impression is clicked with probability
0.7 when its keyword belongs to that facet (else 0.05); an ad impression is clicked with
probability 0.6 when its title carries a keyword of that facet (else 0.05). History features
hold the user's earlier SF clicks and the titles of the ads they clicked, so a model can learn the
preference from them. Days 0–3 are
train, day 4 valid, day 5 test. The true probabilities go to ``<logs>/oracle/sf_impressions.csv``.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

FACETS = ("color", "size", "style", "price")
KEYWORDS_PER_FACET = 5
DAYS = {"train": (0, 1, 2, 3), "valid": (4,), "test": (5,)}
PROFILE = {"age_bucket": 7, "gender": 3, "city_tier": 4, "activity_level": 4}

SF_FEATURES = {
    "user_id": {"dtype": "string", "kind": "scalar", "vocab": "user_id", "group": "user", "role": "feature"},
    "age_bucket": {"dtype": "string", "kind": "scalar", "vocab": "age_bucket", "group": "user_profile", "role": "feature"},
    "gender": {"dtype": "string", "kind": "scalar", "vocab": "gender", "group": "user_profile", "role": "feature"},
    "city_tier": {"dtype": "string", "kind": "scalar", "vocab": "city_tier", "group": "user_profile", "role": "feature"},
    "activity_level": {"dtype": "string", "kind": "scalar", "vocab": "activity_level", "group": "user_profile", "role": "feature"},
    "history_sf_keywords": {"dtype": "string", "kind": "varlen", "max_length": 20, "vocab": "token", "group": "history", "role": "feature"},
    "history_ad_title_tokens": {"dtype": "string", "kind": "varlen", "max_length": 24, "vocab": "token", "group": "history", "role": "feature"},
    "query_tokens": {"dtype": "string", "kind": "varlen", "max_length": 4, "vocab": "token", "group": "query", "role": "feature"},
    "query_category": {"dtype": "string", "kind": "scalar", "vocab": "category", "group": "query_extra", "role": "feature"},
    "clicked": {"dtype": "int64", "kind": "scalar", "role": "label"},
    "impression_id": {"dtype": "int64", "kind": "scalar", "role": "key"},
    "day": {"dtype": "int64", "kind": "scalar", "role": "meta"},
}
SF_ONLY = {"sf_keyword": {"dtype": "string", "kind": "scalar", "vocab": "token", "group": "item", "role": "feature"}}
AD_ONLY = {
    "ad_id": {"dtype": "string", "kind": "scalar", "vocab": "ad_id", "group": "item", "role": "feature"},
    "category": {"dtype": "string", "kind": "scalar", "vocab": "category", "group": "item", "role": "feature"},
    "title_tokens": {"dtype": "string", "kind": "varlen", "max_length": 16, "vocab": "token", "group": "item", "role": "feature"},
    "position": {"dtype": "string", "kind": "scalar", "vocab": "position", "group": "context", "role": "feature"},
}


def _keyword(facet: int, index: int) -> str:
    return f"sp_{FACETS[facet]}_{index:02d}"


def _example(tf, row: dict, features: dict) -> bytes:
    feature = {}
    for name, meta in features.items():
        value = row[name]
        values = value if isinstance(value, list) else [value]
        if meta["dtype"] == "string":
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[str(v).encode() for v in values]))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def generate_rows(seed: int = 0, n_users: int = 40, sf_per_user_day: int = 4,
                  ad_per_user_day: int = 8, n_ads: int = 60):
    """Rows of the sf and ad_click datasets plus the oracle probabilities of the sf rows."""
    rng = np.random.default_rng(seed)
    n_facets = len(FACETS)
    users = []
    for u in range(n_users):
        users.append({"user_id": str(u), "preferred": int(rng.integers(n_facets)),
                      **{k: str(int(rng.integers(n))) for k, n in PROFILE.items()}})
    ads = []
    for a in range(n_ads):
        cat = int(rng.integers(8))
        sps = sorted({_keyword(int(rng.integers(n_facets)), int(rng.integers(KEYWORDS_PER_FACET)))
                      for _ in range(int(rng.integers(1, 3)))})
        words = [f"c{cat:02d}_w{int(rng.integers(10)):02d}" for _ in range(int(rng.integers(2, 6)))]
        fillers = [f"f{int(rng.integers(50)):03d}" for _ in range(int(rng.integers(0, 4)))]
        ads.append({"ad_id": str(a), "category": str(cat), "title": (sps + words + fillers)[:16],
                    "facets": {FACETS.index(s.split("_")[1]) for s in sps}})
    sf_rows, ad_rows = [], []
    history = collections.defaultdict(list)  # user -> clicked keywords, most recent first
    title_history = collections.defaultdict(list)  # user -> clicked ads' title tokens
    impression = 0
    for day in range(6):
        todays_clicks = collections.defaultdict(list)
        todays_titles = collections.defaultdict(list)
        for user in users:
            u = int(user["user_id"])
            for _ in range(sf_per_user_day):
                facet = int(rng.integers(n_facets))
                keyword = _keyword(facet, int(rng.integers(KEYWORDS_PER_FACET)))
                cat = int(rng.integers(8))
                p = 0.7 if facet == user["preferred"] else 0.05
                clicked = int(rng.random() < p)
                impression += 1
                sf_rows.append({**{k: user[k] for k in ("user_id", *PROFILE)},
                                "history_sf_keywords": history[u][:20],
                                "history_ad_title_tokens": title_history[u][:24],
                                "query_tokens": [f"cat_{cat:02d}"] + ([f"mod_{FACETS[facet]}_1"] if rng.random() < 0.3 else []),
                                "query_category": str(cat), "sf_keyword": keyword,
                                "clicked": clicked, "impression_id": impression, "day": day,
                                "p_click": p})
                if clicked:
                    todays_clicks[u].insert(0, keyword)
            for _ in range(ad_per_user_day):
                ad = ads[int(rng.integers(n_ads))]
                p = 0.6 if user["preferred"] in ad["facets"] else 0.05
                impression += 1
                ad_rows.append({**{k: user[k] for k in ("user_id", *PROFILE)},
                                "history_sf_keywords": history[u][:20],
                                "history_ad_title_tokens": title_history[u][:24],
                                "query_tokens": [f"cat_{int(ad['category']):02d}"],
                                "query_category": ad["category"], "ad_id": ad["ad_id"],
                                "category": ad["category"], "title_tokens": ad["title"],
                                "position": str(int(rng.integers(1, 6))),
                                "clicked": int(rng.random() < p), "impression_id": impression,
                                "day": day})
                if ad_rows[-1]["clicked"]:
                    todays_titles[u][:0] = ad["title"]
        for u, clicks in todays_clicks.items():
            history[u] = clicks + history[u]
        for u, titles in todays_titles.items():
            title_history[u] = titles + title_history[u]
    return sf_rows, ad_rows


def _vocab(rows_by_feature) -> list[str]:
    counts = collections.Counter()
    for values in rows_by_feature:
        counts.update(values)
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def write_dataset(out: Path, seed: int = 0, logs_dir: Path | None = None, train_shards: int = 2,
                  **sizes) -> Path:
    """Write ``out/spec.json``, ``out/vocab/*.txt`` and GZIP TFRecords; return ``out``."""
    from adpush_core.tfenv import import_tensorflow  # noqa: PLC0415

    tf = import_tensorflow()
    out = Path(out)
    sf_rows, ad_rows = generate_rows(seed, **sizes)
    sf_features = {**SF_FEATURES, **SF_ONLY}
    ad_features = {**SF_FEATURES, **AD_ONLY}
    train_days = set(DAYS["train"])
    vocab_values = collections.defaultdict(list)
    for rows, features in ((sf_rows, sf_features), (ad_rows, ad_features)):
        for row in rows:
            if row["day"] not in train_days:
                continue
            for name, meta in features.items():
                if "vocab" in meta:
                    value = row[name]
                    vocab_values[meta["vocab"]].append(value if isinstance(value, list) else [value])
    (out / "vocab").mkdir(parents=True, exist_ok=True)
    vocabularies = {}
    for name, values in sorted(vocab_values.items()):
        tokens = _vocab(values)
        (out / "vocab" / f"{name}.txt").write_text("".join(t + "\n" for t in tokens))
        vocabularies[name] = {"file": f"vocab/{name}.txt", "size": len(tokens),
                              "num_oov_buckets": 1, "min_count": 1}
    datasets = {}
    for dname, rows, features in (("sf", sf_rows, sf_features), ("ad_click", ad_rows, ad_features)):
        (out / dname).mkdir(exist_ok=True)
        files, counts, rates = {}, {}, {}
        for split, days in DAYS.items():
            split_rows = [r for r in rows if r["day"] in days]
            shards = train_shards if split == "train" else 1
            for s in range(shards):
                path = out / dname / f"{split}-{s:05d}-of-{shards:05d}.tfrecord.gz"
                with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
                    for row in split_rows[s::shards]:
                        writer.write(_example(tf, row, features))
            files[split] = f"{dname}/{split}-*-of-*.tfrecord.gz"
            counts[split] = len(split_rows)
            rates[split] = {"clicked": float(np.mean([r["clicked"] for r in split_rows]))}
        datasets[dname] = {"proto": "tf.train.Example", "compression": "GZIP", "files": files,
                           "row_counts": counts, "label_rates": rates, "labels": ["clicked"],
                           "key": ["impression_id"], "features": features}
    spec = {"format_version": 1, "source": "world", "vocabularies": vocabularies,
            "datasets": datasets}
    (out / "spec.json").write_text(json.dumps(spec, indent=2))
    if logs_dir is not None:
        (Path(logs_dir) / "oracle").mkdir(parents=True, exist_ok=True)
        lines = ["impression_id,p_click"] + [f"{r['impression_id']},{r['p_click']}" for r in sf_rows]
        (Path(logs_dir) / "oracle" / "sf_impressions.csv").write_text("\n".join(lines) + "\n")
    return out
