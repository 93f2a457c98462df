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

import os
from concurrent.futures import ThreadPoolExecutor
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
    """Sparse ``[N, 2**n_bits]`` matrix of ``row_features`` for every row.

    The matrix scikit-learn's ``FeatureHasher(input_type="dict")`` builds from them, entry for
    entry and bit for bit (signed murmurhash3 of each feature name, the entries of a row in the
    order ``row_features`` inserts them, then ``sum_duplicates``), but each distinct keyword ×
    token name is hashed once instead of ~50 names a row in Python: about half the time on the
    demo's SF splits (tests/tfrs_models/test_sp_baseline.py checks the two agree).
    """
    import pandas as pd  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415
    import sklearn  # noqa: PLC0415

    n_features = 2 ** n_bits
    kw_names, kw = _factorize(columns["sf_keyword"])
    n = kw.size
    prefixes = [f"kw={name}" for name in kw_names]
    # (row, hash, value) of every entry, group by group in the order row_features inserts them
    # into a row's dict, each group's entries in row-major order (a token at its first position).
    entries = [(np.arange(n), _hash_names(prefixes, kw, [""], kw * 0, ""), np.ones(n))]
    groups = [("query_tokens", "q", "set"), *((name, name, "one") for name in PROFILE_FIELDS),
              *((name, short, "mean") for name, short in HISTORY_FIELDS.items())]
    for name, label, how in groups:
        if name not in columns:
            continue
        tokens = np.asarray(columns[name], dtype=object).reshape(n, -1)
        if how == "one":
            names, code = _factorize(tokens[:, 0])
            row, value = np.arange(n), np.ones(n)
        else:
            nonempty = tokens.astype(bool)   # row_features skips b"" (the padding)
            row, pos = np.nonzero(nonempty)
            names, code = _factorize(tokens[row, pos])
            # one entry per distinct (row, token), where the token first occurs in the row
            pair, _ = pd.factorize(row * len(names) + code)  # numbered by first occurrence
            seen = np.maximum.accumulate(pair)
            first = np.flatnonzero(np.r_[pair[:1] >= 0, pair[1:] > seen[:-1]])
            count = np.bincount(pair, minlength=first.size)  # count[i]: entry first[i]'s
            row, code = row[first], code[first]
            if how == "set":
                value = np.ones(row.size)
            else:
                length = nonempty.sum(axis=1)[row]
                value = _repeated_sums(count, length)
        entries.append((row, _hash_names(prefixes, kw[row], names, code, f"|{label}="), value))
    row, hashes, value = (np.concatenate([e[k] for e in entries]) for k in range(3))
    # A stable sort by row keeps the group order and, within a group, the row-major order.
    order = np.argsort(row, kind="stable")
    row, hashes, value = row[order], hashes[order], value[order]
    index = np.where(hashes == -2 ** 31, (2 ** 31 - 1 - (n_features - 1)) % n_features,
                     np.abs(hashes) % n_features).astype(np.int32)
    value = value * np.where(hashes >= 0, 1.0, -1.0)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n))]).astype(np.int32)
    matrix = sp.csr_array((value, index, indptr), dtype=np.float64, shape=(n, n_features))
    matrix.sum_duplicates()
    # The sparse type FeatureHasher returns: scikit-learn >= 1.8 follows its "sparse_interface"
    # setting (sparray or spmatrix); older versions always return a csr_matrix.
    if sklearn.get_config().get("sparse_interface", "spmatrix") == "sparray":
        return matrix
    return sp.csr_matrix(matrix)


def _factorize(values) -> tuple[list[str], np.ndarray]:
    """``(distinct values as text, code of each value)`` of a 1-d array of bytes/str."""
    import pandas as pd  # noqa: PLC0415

    codes, uniques = pd.factorize(np.asarray(values, dtype=object).reshape(-1))
    return [_text(u) for u in uniques], codes.astype(np.int64)


def _hash_names(prefixes: list[str], kw: np.ndarray, names: list[str], code: np.ndarray,
                separator: str) -> np.ndarray:
    """Signed murmurhash3 (seed 0, as FeatureHasher) of ``prefixes[kw] + separator +
    names[code]`` for each entry, each distinct name hashed once."""
    from sklearn.utils import murmurhash3_32  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    width = max(1, len(names))
    inverse, distinct = pd.factorize(kw * width + code)
    hashes = np.fromiter((murmurhash3_32(prefixes[k // width] + separator + names[k % width], seed=0)
                          for k in distinct.tolist()), np.int64, len(distinct))
    return hashes[inverse]


def _repeated_sums(count: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``1/length`` added ``count`` times from 0.0, as row_features accumulates a history
    token's weight (the same float, rounding included)."""
    import pandas as pd  # noqa: PLC0415

    width = int(length.max(initial=0)) + 1
    inverse, distinct = pd.factorize(count.astype(np.int64) * width + length)
    sums = []
    for k in distinct.tolist():
        total = 0.0
        for _ in range(k // width):
            total += 1.0 / (k % width)
        sums.append(total)
    return np.asarray(sums, np.float64)[inverse]


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

        def fit_one(c):
            model = LogisticRegression(C=c, solver="liblinear", tol=1e-4, max_iter=500)
            model.fit(x_train, y_train)
            return model, float(metrics.logloss(valid["clicked"], model.predict_proba(x_valid)[:, 1]))

        # The C values fit in threads (liblinear's primal solver is deterministic and runs
        # without the GIL), the slowest (largest C, weakest penalty) first; the chosen C is the
        # one the grid in order gives.
        with ThreadPoolExecutor(max_workers=min(len(self.c_grid), _cores())) as pool:
            futures = {c: pool.submit(fit_one, c) for c in sorted(self.c_grid, reverse=True)}
            fits = [futures[c].result() for c in self.c_grid]
        best = None
        for c, (model, loss) in zip(self.c_grid, fits):
            self.valid_logloss[c] = loss
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


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
