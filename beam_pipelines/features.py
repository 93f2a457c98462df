"""Feature contract of every dataset (docs/contracts.md §5), as written into spec.json."""
from __future__ import annotations

PROFILE_FIELDS = ("age_bucket", "gender", "city_tier", "activity_level")


def _f(dtype, group, role="feature", vocab=None, kind="scalar", max_length=None, part=None):
    spec = {"dtype": dtype, "kind": kind, "group": group, "role": role}
    if vocab is not None:
        spec["vocab"] = vocab
    if max_length is not None:
        spec["max_length"] = max_length
    if part is not None:
        spec["part"] = part
    return spec


def _user_query_features(config) -> dict:
    features = {"user_id": _f("string", "user", vocab="user_id")}
    for name in PROFILE_FIELDS:
        features[name] = _f("string", "user_profile", vocab=name)
    features["history_sf_keywords"] = _f("string", "history", vocab="token", kind="varlen",
                                         max_length=config.max_sf_history)
    features["history_ad_title_tokens"] = _f("string", "history", vocab="token", kind="varlen",
                                             max_length=config.max_ad_history_tokens)
    features["query_tokens"] = _f("string", "query", vocab="token", kind="varlen",
                                  max_length=config.max_query_tokens)
    features["query_category"] = _f("string", "query_extra", vocab="category")
    return features


def _labels_keys(features, labels, keys):
    for name in labels:
        features[name] = _f("int64", "label", role="label")
    for name, dtype in keys:
        features[name] = _f(dtype, "key", role="key")


def sf_features(config) -> dict:
    features = _user_query_features(config)
    features["sf_keyword"] = _f("string", "item", vocab="token")
    _labels_keys(features, ["clicked"], [("impression_id", "int64")])
    features["day"] = _f("int64", "meta", role="meta")
    return features


def ad_click_features(config) -> dict:
    features = _user_query_features(config)
    features["ad_id"] = _f("string", "item", vocab="ad_id")
    features["category"] = _f("string", "item", vocab="category")
    features["title_tokens"] = _f("string", "item", vocab="token", kind="varlen",
                                  max_length=config.max_title_tokens)
    features["position"] = _f("string", "context", vocab="position")
    _labels_keys(features, ["clicked"], [("impression_id", "int64")])
    features["day"] = _f("int64", "meta", role="meta")
    return features


def sequence_features(config, with_profile: bool, with_titles: bool = False) -> dict:
    """``with_titles``: the candidate's catalogue title tokens (world source; Taobao has none)."""
    ctx = "context"
    features = {"user_id": _f("string", "user", vocab="user_id", part=ctx)}
    if with_profile:
        for name in PROFILE_FIELDS:
            features[name] = _f("string", "user_profile", vocab=name, part=ctx)
    features["item_id"] = _f("string", "item", vocab="item_id", part=ctx)
    features["category"] = _f("string", "item", vocab="category", part=ctx)
    if with_titles:
        features["title_tokens"] = _f("string", "item", vocab="title_token", kind="varlen",
                                      max_length=config.max_title_tokens, part=ctx)
    for name in ("click", "conversion"):
        features[name] = _f("int64", "label", role="label", part=ctx)
    features["ts"] = _f("int64", "key", role="key", part=ctx)
    features["day"] = _f("int64", "meta", role="meta", part=ctx)
    seq = "sequence"
    n = config.max_history
    features["hist_item_id"] = _f("string", "history", vocab="item_id", kind="varlen", max_length=n, part=seq)
    features["hist_category"] = _f("string", "history", vocab="category", kind="varlen", max_length=n, part=seq)
    features["hist_behavior"] = _f("string", "history", vocab="behavior", kind="varlen", max_length=n, part=seq)
    features["hist_time_gap"] = _f("float32", "history", kind="varlen", max_length=n, part=seq)
    return features


def cascade_flat_features(fields) -> dict:
    features = {}
    for field in fields:
        group = {"1": "user", "2": "item"}.get(field[0], "context")
        features[field] = _f("string", group, vocab=field)
    for name in ("click", "conversion"):
        features[name] = _f("int64", "label", role="label")
    features["row_id"] = _f("string", "key", role="key")
    return features


def dataset_spec(name: str, features: dict, labels, key, proto="tf.train.Example") -> dict:
    return {"proto": proto, "labels": list(labels), "key": list(key), "features": features}


def vocab_names(datasets: dict) -> list[str]:
    return sorted({f["vocab"] for d in datasets.values() for f in d["features"].values() if "vocab" in f})
