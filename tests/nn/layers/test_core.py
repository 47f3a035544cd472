import numpy as np
import pytest

from bptrain.nn import Activation, Dense
from bptrain.nn.gradcheck import check_layer

rng = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 6), (1, 1)])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("regularizer", [None, "l2", {"type": "l1_l2", "l1": 0.01, "l2": 0.02}])
@pytest.mark.parametrize("activation", [None, "tanh", "softmax"])
def test_dense_gradient(shape, use_bias, regularizer, activation):
    layer = Dense(7, activation=activation, use_bias=use_bias, kernel_regularizer=regularizer)
    report = check_layer(layer, rng.normal(size=shape))
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", "kernel", *(["bias"] if use_bias else [])}


def test_dense_forward_values():
    layer = Dense(2, activation="relu", kernel_initializer="ones", bias_initializer="ones")
    assert layer.build((3,), rng) == (2,)
    y = layer.forward(np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -1.0]], dtype=np.float32))
    np.testing.assert_allclose(y, [[7.0, 7.0], [0.0, 0.0]])
    assert y.dtype == np.float32


def test_dense_logits_mode_skips_activation():
    layer = Dense(3, activation="softmax")
    layer.build((2,), rng)
    x = rng.normal(size=(4, 2)).astype(np.float32)
    logits = layer.forward(x, activate=False)
    np.testing.assert_allclose(logits, x @ layer.kernel.value + layer.bias.value, rtol=1e-6)
    dy = np.ones_like(logits)
    dx = layer.backward(dy)  # no activation in the backward either
    np.testing.assert_allclose(dx, dy @ layer.kernel.value.T, rtol=1e-6)


def test_gradients_accumulate():
    layer = Dense(2)
    x = rng.normal(size=(3, 4))
    layer.build((4,), rng)
    layer.forward(x)
    layer.backward(np.ones((3, 2), dtype=np.float32))
    first = layer.kernel.grad.copy()
    layer.backward(np.ones((3, 2), dtype=np.float32))
    np.testing.assert_allclose(layer.kernel.grad, 2 * first)


def test_dense_rejects_bad_units():
    with pytest.raises(ValueError, match="units must be positive"):
        Dense(0)


@pytest.mark.parametrize("name", ["relu", "gelu", "softmax", "sigmoid"])
def test_activation_layer_gradient(name):
    assert check_layer(Activation(name), rng.normal(size=(3, 2, 4))).passed(1e-6)
