import numpy as np

import tfrs_models  # noqa: F401 - selects Keras 2
from tfrs_models.layers.mean_bag_pooling import MeanBagPooling


def test_mean_ignores_padding_and_empty_bag_is_zero():
    emb = np.array([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]],
                    [[5.0, 5.0], [7.0, 7.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[True, True, False], [False, False, False]])
    out = MeanBagPooling()(emb, mask).numpy()
    np.testing.assert_allclose(out, [[2.0, 4.0], [0.0, 0.0]])


def test_get_config_round_trip():
    layer = MeanBagPooling(name="pool")
    assert MeanBagPooling.from_config(layer.get_config()).name == "pool"
