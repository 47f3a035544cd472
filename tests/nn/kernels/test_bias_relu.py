"""A Dense layer's bias and ReLU in one compiled pass each way (``kernels.bias_relu``): the
reference's bits (NaN, zeros and the row sums' order included), the same training as Dense's
own calls, ``fits``' rule, and finite differences through the fused layer in float64."""

import numpy as np
import pytest

from bptrain.nn import Adam, Dense, Model, Sequential, backend
from bptrain.nn.gradcheck import numeric_gradient, relative_error
from bptrain.nn.kernels import bias_relu, compiled
from bptrain.nn.parameter import Parameter

pytest.importorskip("numba")


def cases(dtype, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((33, 70)).astype(dtype)
    z[0, :4] = [np.nan, -0.0, 0.0, np.inf]
    bias = rng.standard_normal(70).astype(dtype)
    bias[:4] = 0
    dy = rng.standard_normal((33, 70)).astype(dtype)
    return z, bias, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_is_the_references_bits(dtype):
    z, bias, _ = cases(dtype)
    z2 = z.copy()
    a = bias_relu.bias_relu(z, bias)
    a_ref = bias_relu.bias_relu_reference(z2, bias)
    np.testing.assert_array_equal(z, z2)  # z += bias, in place, both ways
    np.testing.assert_array_equal(a, a_ref)  # NaN where z is NaN
    assert not np.signbit(a).any()  # max(-0, 0) is +0, as NumPy's vectorized maximum gives


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fresh", [True, False])
def test_backward_is_the_references_bits(dtype, fresh):
    z, bias, dy = cases(dtype, seed=1)
    a = bias_relu.bias_relu_reference(z, bias)
    dy[1, 5] = np.inf  # times 0 where a = 0: NaN, both ways
    b = Parameter(np.zeros(70, dtype))
    b.grad[...] = 0 if fresh else 0.5
    b.fresh = fresh
    dz = bias_relu.relu_bias_backward(dy, a, b)
    dz_ref, sums_ref = bias_relu.relu_bias_backward_reference(dy, a)
    np.testing.assert_array_equal(dz, dz_ref)
    np.testing.assert_array_equal(b.grad, sums_ref if fresh else 0.5 + sums_ref)
    assert not b.fresh


def test_backward_declines_what_it_cannot_take():
    z, bias, dy = cases(np.float32)
    a = bias_relu.bias_relu(z, bias)
    b = Parameter(np.zeros(70, np.float32))
    assert bias_relu.relu_bias_backward(np.asfortranarray(dy), a, b) is None
    assert bias_relu.relu_bias_backward(dy.astype(np.float64), a, b) is None


def mlp(inputs: int, dtype=np.float32):
    network = Sequential([Dense(128, "relu"), Dense(10)])
    network.build((inputs,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam(1e-2))
    model.cast(dtype)
    return network, model


def test_fits_a_relu_dense_with_a_kernel_worth_compiling():
    network, _ = mlp(512)  # 512 x 128 = compiled.MIN_SIZE weights
    z = np.zeros((4, 128), np.float32)
    assert bias_relu.fits(network.layers[0], z)
    assert not bias_relu.fits(network.layers[0], np.asfortranarray(np.zeros((4, 128), np.float32)))
    assert not bias_relu.fits(network.layers[1], np.zeros((4, 10), np.float32))  # no ReLU
    small, _ = mlp(511)
    assert not bias_relu.fits(small.layers[0], z)  # below MIN_SIZE


def test_training_is_the_same_bits_as_densees_own_calls(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 32, 600)).astype(np.float32)
    y = rng.integers(0, 10, (5, 32))

    def trained():
        network, model = mlp(600)
        for i in range(5):
            model.train_step(x[i], y[i])
        return network, model.parameters().flat_value.copy()

    network, fused = trained()
    assert network.layers[0]._one_pass
    monkeypatch.setattr(bias_relu, "fits", lambda layer, z: False)
    network, plain = trained()
    assert not network.layers[0]._one_pass
    np.testing.assert_array_equal(fused, plain)


def test_finite_differences_through_the_fused_layer_in_float64():
    network, model = mlp(512, np.float64)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 512)), rng.integers(0, 10, 6)

    def loss():
        return model.step_loss.forward(model.forward(x, training=True), y)

    model.compute_gradients(x, y)
    assert network.layers[0]._one_pass and backend.name == "numpy"
    for p in network.layers[0].parameters():
        picked = rng.choice(p.size, 30, replace=False)
        numeric = numeric_gradient(loss, p.value, picked, 1e-6)
        assert relative_error(p.grad.reshape(-1)[picked], numeric) < 1e-6
    assert compiled.MIN_SIZE == 512 * 128
