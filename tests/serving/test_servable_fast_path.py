"""Servable's session run (the fast path) gives what the structured call gives, and leaves errors to it."""
from __future__ import annotations

import numpy as np
import pytest

from serving.errors import ServingError


@pytest.fixture(scope="module")
def servable(model_base):
    from serving.servable import Servable

    return Servable("keyword_ctr", 1, model_base["keyword_ctr_path"])


def _structured(servable, key, inputs):
    saved = servable._fast
    servable._fast = {}
    try:
        return servable.predict(key, inputs)
    finally:
        servable._fast = saved


@pytest.mark.parametrize("key", ["serving_default", "select_selling_points"])
@pytest.mark.parametrize("rows", [1, 7])
def test_session_call_equals_structured_call(servable, key, rows):
    import toy_models

    inputs = toy_models.keyword_ctr_requests(rows, seed=rows) if key == "serving_default" \
        else toy_models.select_request(rows, seed=rows)
    assert servable._fast[key].accepts(inputs)
    fast, slow = servable.predict(key, inputs), _structured(servable, key, inputs)
    assert fast.keys() == slow.keys()
    for alias in fast:
        if fast[alias].dtype == object:
            assert fast[alias].tolist() == slow[alias].tolist()
        else:
            np.testing.assert_array_equal(fast[alias], slow[alias])


def test_a_shape_that_does_not_fit_goes_to_tensorflows_own_checks(servable):
    import toy_models

    inputs = toy_models.keyword_ctr_requests(2, seed=0)
    inputs["hour"] = inputs["hour"].reshape(2, 1)      # rank 2 where the signature says [batch]
    assert not servable._fast["serving_default"].accepts(inputs)
    with pytest.raises(ServingError) as fast:
        servable.predict("serving_default", inputs)
    with pytest.raises(ServingError) as slow:
        _structured(servable, "serving_default", inputs)
    assert (fast.value.code, fast.value.message) == (slow.value.code, slow.value.message)
