"""The simple baseline every SF evaluation is read against: logistic regression on hashed crosses.

A model is done when it beats this on the same rows (issue 13; as TFX's Evaluator shows a
candidate beside a baseline). Features of one SF impression, each hashed into ``2**n_bits``
buckets (scikit-learn ``FeatureHasher``, signed hashing), all crossed with the candidate keyword:

- ``kw``: the keyword alone (its popularity);
- ``kw×q``: keyword × each query token (the facet boost of the query's modifiers);
- ``kw×<field>``: keyword × each profile field (age bucket, gender, city tier, activity level);
- ``kw×h``: keyword × each SF keyword of the user's history, weight 1/len(history);
- ``kw×t``: keyword × each title token of the user's clicked ads, weight 1/len(those tokens).

L2-regularised ``LogisticRegression`` (liblinear) fit on the train split; ``C`` is chosen on the validation
split's logloss from a grid; the test split is only scored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PROFILE_FIELDS = ("age_bucket", "gender", "city_tier", "activity_level")
HISTORY_FIELDS = {"history_sf_keywords": "h", "history_ad_title_tokens": "t"}
C_GRID = (0.03, 0.1, 0.3, 1.0)
N_BITS = 20


def baseline_columns(spec) -> list[str]:
    """The SF columns the baseline reads (those the spec has)."""
    wanted = ["sf_keyword", "query_tokens", *PROFILE_FIELDS, *HISTORY_FIELDS, "clicked"]
    return [c for c in wanted if c in spec.dataset("sf").features]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def row_features(columns: dict, i: int) -> dict[str, float]:
    """The hashed-cross features of row ``i`` of ``columns`` (numpy arrays as read from the
    TFRecords: scalars ``[N]``, varlen ``[N, L]`` padded with ``b""``) as ``{name: value}``."""
    kw = _text(columns["sf_keyword"][i])
    features = {f"kw={kw}": 1.0}
    for token in columns.get("query_tokens", [[]] * (i + 1))[i]:
        if token:
            features[f"kw={kw}|q={_text(token)}"] = 1.0
    for name in PROFILE_FIELDS:
        if name in columns:
            features[f"kw={kw}|{name}={_text(columns[name][i])}"] = 1.0
    for name, short in HISTORY_FIELDS.items():
        if name not in columns:
            continue
        tokens = [_text(t) for t in columns[name][i] if t]
        for token in tokens:
            key = f"kw={kw}|{short}={token}"
            features[key] = features.get(key, 0.0) + 1.0 / len(tokens)
    return features


def design_matrix(columns: dict, n_bits: int = N_BITS):
    """Sparse ``[N, 2**n_bits]`` matrix of ``row_features`` for every row."""
    from sklearn.feature_extraction import FeatureHasher  # noqa: PLC0415

    n = len(columns["sf_keyword"])
    hasher = FeatureHasher(n_features=2 ** n_bits, input_type="dict")
    return hasher.transform(row_features(columns, i) for i in range(n))


@dataclass
class HashedCrossBaseline:
    """Fit with :meth:`fit` (train + valid columns); then :meth:`predict`."""

    c_grid: tuple[float, ...] = C_GRID
    n_bits: int = N_BITS
    chosen_c: float | None = None
    valid_logloss: dict = field(default_factory=dict)
    model: object = None

    def fit(self, train: dict, valid: dict) -> "HashedCrossBaseline":
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        from tfrs_models import metrics  # noqa: PLC0415

        x_train, x_valid = design_matrix(train, self.n_bits), design_matrix(valid, self.n_bits)
        y_train = np.asarray(train["clicked"]).astype(int)
        best = None
        for c in self.c_grid:
            model = LogisticRegression(C=c, solver="liblinear", tol=1e-4, max_iter=500)
            model.fit(x_train, y_train)
            loss = metrics.logloss(valid["clicked"], model.predict_proba(x_valid)[:, 1])
            self.valid_logloss[c] = float(loss)
            if best is None or loss < best[0]:
                best = (loss, c, model)
        _, self.chosen_c, self.model = best
        return self

    def predict(self, columns: dict) -> np.ndarray:
        return self.model.predict_proba(design_matrix(columns, self.n_bits))[:, 1]

    def summary(self) -> dict:
        return {"kind": "logistic regression, hashed keyword crosses (scikit-learn)",
                "features": "kw, kw×query token, kw×profile field, kw×history SF keyword, "
                            "kw×history ad-title token",
                "n_features": 2 ** self.n_bits, "chosen_C": self.chosen_c,
                "rule": "lowest validation logloss",
                "valid_logloss": {f"{c:g}": v for c, v in self.valid_logloss.items()}}


def fit_and_score(spec, test_columns: dict | None = None,
                  n_bits: int = N_BITS) -> tuple[np.ndarray, dict]:
    """Fit on ``spec``'s SF train split (C on valid) and score its test split (in the order
    ``read_columns`` reads it, or the given ``test_columns``); returns ``(p, summary)``."""
    from tfrs_models.input import read_columns  # noqa: PLC0415

    names = baseline_columns(spec)
    train = read_columns(spec, "sf", "train", names)
    valid = read_columns(spec, "sf", "valid", names)
    baseline = HashedCrossBaseline(n_bits=n_bits).fit(train, valid)
    test = test_columns if test_columns is not None else read_columns(spec, "sf", "test", names)
    return baseline.predict(test), baseline.summary()
