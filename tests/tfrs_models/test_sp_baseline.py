"""The evaluation baseline: logistic regression on hashed keyword crosses (issue 13)."""
import numpy as np
import pytest

import tfrs_models  # noqa: F401 - selects Keras 2
from tfrs_models import metrics
from tfrs_models.input import read_columns
from tfrs_models.selling_point.baseline import C_GRID, fit_and_score

N_BITS = 16  # the fixture has a few thousand crosses

COLUMNS = ["sf_keyword", "query_tokens", "age_bucket", "gender", "city_tier", "activity_level",
           "history_sf_keywords", "history_ad_title_tokens", "clicked"]


def _hand_features(split):
    """The crosses written out by hand for every row: keyword; keyword x query token; keyword x
    each profile field; keyword x history keyword and x history title token, weight 1/len."""
    rows = []
    for i in range(len(split["sf_keyword"])):
        kw = split["sf_keyword"][i].decode()
        row = {f"kw={kw}": 1.0}
        row.update({f"kw={kw}|q={t.decode()}": 1.0 for t in split["query_tokens"][i] if t})
        for field in ("age_bucket", "gender", "city_tier", "activity_level"):
            row[f"kw={kw}|{field}={split[field][i].decode()}"] = 1.0
        for name, short in (("history_sf_keywords", "h"), ("history_ad_title_tokens", "t")):
            tokens = [t.decode() for t in split[name][i] if t]
            for t in tokens:
                row[f"kw={kw}|{short}={t}"] = row.get(f"kw={kw}|{short}={t}", 0.0) + 1 / len(tokens)
        rows.append(row)
    return rows


def test_baseline_auc_equals_a_hand_built_scikit_learn_fit(sp_spec):
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import LogisticRegression

    split = {s: read_columns(sp_spec, "sf", s, COLUMNS) for s in ("train", "valid", "test")}
    hasher = FeatureHasher(n_features=2 ** N_BITS, input_type="dict")
    x = {s: hasher.transform(_hand_features(split[s])) for s in split}
    fits = {c: LogisticRegression(C=c, solver="liblinear", tol=1e-4, max_iter=500).fit(x["train"], split["train"]["clicked"])
            for c in C_GRID}
    losses = {c: metrics.logloss(split["valid"]["clicked"], f.predict_proba(x["valid"])[:, 1])
              for c, f in fits.items()}
    best = min(losses, key=losses.get)
    expected = metrics.auc(split["test"]["clicked"], fits[best].predict_proba(x["test"])[:, 1])

    scores, summary = fit_and_score(sp_spec, n_bits=N_BITS)
    assert summary["chosen_C"] == best
    assert metrics.auc(split["test"]["clicked"], scores) == pytest.approx(expected, abs=1e-9)
    # it learns something of the planted facet preference (exact keyword x history-keyword
    # pairs generalise poorly over 640 rows: that is the point of a simple baseline)
    assert expected > 0.6


def _feature_hasher_matrix(columns, n_bits):
    """The matrix as scikit-learn builds it from ``row_features``, one dict a row."""
    from sklearn.feature_extraction import FeatureHasher

    from tfrs_models.selling_point.baseline import row_features

    return FeatureHasher(n_features=2 ** n_bits, input_type="dict").transform(
        row_features(columns, i) for i in range(len(columns["sf_keyword"])))


def _assert_identical(a, b):
    assert type(a) is type(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.data.tobytes() == b.data.tobytes()  # bit for bit, not approximately


def test_design_matrix_is_feature_hashers_on_row_features_bit_for_bit(sp_spec):
    from tfrs_models.selling_point.baseline import design_matrix

    for split in ("train", "test"):
        columns = read_columns(sp_spec, "sf", split, COLUMNS)
        _assert_identical(design_matrix(columns, N_BITS), _feature_hasher_matrix(columns, N_BITS))


def test_design_matrix_edge_cases_bit_for_bit():
    """Repeated query tokens count once; a history token seen 3 times out of 5 weighs
    1/5 + 1/5 + 1/5 (summed as row_features sums it, not 3/5); empty bags, non-ASCII tokens, str
    values and 4 bits (so distinct names collide in one bucket) agree with FeatureHasher."""
    from tfrs_models.selling_point.baseline import design_matrix

    b = lambda *tokens: [t.encode() for t in tokens]  # noqa: E731
    columns = {
        "sf_keyword": np.array(b("fast", "fast", "éco", "cheap"), dtype=object),
        "query_tokens": np.array([b("red", "red", "", ""), b("", "", "", ""),
                                  b("blue", "red", "blue", "x"), b("ü", "", "", "")], dtype=object),
        "age_bucket": np.array(b("1", "2", "", "1"), dtype=object),
        "gender": np.array(["f", "m", "f", "m"], dtype=object),
        "history_sf_keywords": np.array([b("a", "b", "a", "a", "c", "", "", ""),
                                         b("", "", "", "", "", "", "", ""),
                                         b("a", "a", "a", "b", "b", "b", "c", "x"),
                                         b("q", "", "", "", "", "", "", "")], dtype=object),
        "history_ad_title_tokens": np.array([b("t", "t", "u"), b("v", "", ""), b("", "", ""),
                                             b("t", "u", "t")], dtype=object),
        "clicked": np.array([1, 0, 0, 1]),
    }
    for n_bits in (4, 20):
        _assert_identical(design_matrix(columns, n_bits), _feature_hasher_matrix(columns, n_bits))
    assert 1 / 5 + 1 / 5 + 1 / 5 != 3 / 5  # so the test can tell the two sums apart


@pytest.mark.parametrize("interface", ["spmatrix", "sparray"])
def test_design_matrix_returns_the_sparse_type_feature_hasher_returns(sp_spec, interface):
    """scikit-learn >= 1.8 returns sparse arrays or matrices as its "sparse_interface" setting
    says; the design matrix follows the same setting (older versions: always a csr_matrix)."""
    import sklearn

    from tfrs_models.selling_point.baseline import design_matrix

    if "sparse_interface" not in sklearn.get_config():
        pytest.skip(f"scikit-learn {sklearn.__version__} has no sparse_interface setting")
    columns = read_columns(sp_spec, "sf", "test", COLUMNS)
    with sklearn.config_context(sparse_interface=interface):
        _assert_identical(design_matrix(columns, N_BITS), _feature_hasher_matrix(columns, N_BITS))
