import numpy as np
import pytest

from bptrain.nn import Dropout
from bptrain.nn.gradcheck import check_layer

rng = np.random.default_rng(0)


def test_dropout_fixed_mask_gradient():
    layer = Dropout(0.4)
    assert check_layer(layer, rng.normal(size=(6, 5)), training=True).passed(1e-6)


def test_dropout_statistics_and_inference():
    layer = Dropout(0.25)
    layer.build((1000,), np.random.default_rng(3))
    x = np.ones((200, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer.backward(x), y)  # same mask, same scaling
    assert layer.forward(x, training=False) is x
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


def test_dropout_is_driven_by_the_seeded_generator():
    def masks(seed):
        layer = Dropout(0.5)
        layer.build((10,), np.random.default_rng(seed))
        return [layer.forward(np.ones((2, 10)), training=True) for _ in range(3)]

    np.testing.assert_array_equal(masks(1), masks(1))
    assert not np.array_equal(masks(1), masks(2))
