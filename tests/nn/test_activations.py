import warnings

import numpy as np
import pytest

from bptrain.nn import activations
from bptrain.nn.gradcheck import check_layer
from bptrain.nn.layers import Activation

NAMES = list(activations.ACTIVATIONS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(4, 7), (3, 2, 5)])
def test_gradient(name, shape):
    x = np.random.default_rng(1).normal(size=shape) * 2
    report = check_layer(Activation(name), x)
    assert report.passed(1e-6), report


@pytest.mark.parametrize("name", NAMES)
def test_stable_at_extremes(name):
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    act = activations.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow or invalid-value warning fails the test
        a = act.forward(z)
        dz = act.backward(np.ones_like(a), z, a)
    assert np.isfinite(a).all() and np.isfinite(dz).all()


def test_known_values():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(activations.get("relu").forward(z), [0, 0, 3])
    np.testing.assert_allclose(activations.get("leaky_relu").forward(z), [-0.4, 0, 3])
    np.testing.assert_allclose(activations.get("elu").forward(z), [np.expm1(-2), 0, 3])
    np.testing.assert_allclose(activations.get("sigmoid").forward(z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(activations.get("tanh").forward(z), np.tanh(z))
    gelu = activations.get("gelu").forward(np.array([1.0]))
    np.testing.assert_allclose(gelu, [0.8411920], rtol=1e-6)  # tanh approximation at 1
    p = activations.get("softmax").forward(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(p, [np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()])
    big = activations.get("softmax").forward(np.array([[1e4, 0.0]]))
    np.testing.assert_allclose(big, [[1.0, 0.0]])


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        activations.get("relu6")


def test_relu_with_kept_zeros_equals_maximum_with_zero():
    relu = activations.get("relu")
    rng = np.random.default_rng(0)
    for shape, dtype in [((4, 3, 5), np.float32), ((2, 7), np.float32), ((6,), np.float64)]:
        z = rng.normal(size=shape).astype(dtype)
        z.flat[:3] = [-0.0, 0.0, np.nan]
        a = relu.forward(z)
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_array_equal(a.view(np.uint8), np.maximum(z, 0).view(np.uint8))
    assert not relu._zeros.any()  # never written
