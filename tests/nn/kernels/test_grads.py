"""``kernels.grads.add_matmul`` against ``p.grad += a @ b``: the product written into a fresh
gradient is the reference's bits; a gradient that already holds something is added to."""

import numpy as np
import pytest

from bptrain.nn import Adam, Dense, Flatten, Model, Sequential, regularizers
from bptrain.nn.kernels import grads
from bptrain.nn.parameter import Parameter


def operands(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((32, 20)).astype(dtype)
    return a.T, rng.standard_normal((32, 7)).astype(dtype)  # a transposed view, as Dense gives


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fresh_gradient_gets_the_reference_bits_then_accumulates(dtype):
    fast, plain = Parameter(np.zeros((20, 7), dtype)), Parameter(np.zeros((20, 7), dtype))
    fast.zero_grad(), plain.zero_grad()
    assert fast.fresh
    for seed in (0, 1, 2):  # the first writes, the next two add
        grads.add_matmul(fast, *operands(seed, dtype))
        grads.add_matmul_reference(plain, *operands(seed, dtype))
        assert not fast.fresh
        np.testing.assert_array_equal(fast.grad, plain.grad)
    a0, b0 = operands(0, dtype)
    assert not np.array_equal(fast.grad, a0 @ b0)  # later products were added, not written


def test_row_sums_written_when_fresh_then_added():
    fast, plain = Parameter(np.zeros(7, np.float32)), Parameter(np.zeros(7, np.float32))
    fast.zero_grad(), plain.zero_grad()
    for seed in (0, 1):
        dz = operands(seed)[1]
        grads.add_row_sums(fast, dz)
        grads.add_row_sums_reference(plain, dz)
        np.testing.assert_array_equal(fast.grad, plain.grad)
    assert not fast.fresh
    np.testing.assert_allclose(fast.grad, operands(0)[1].sum(0) + operands(1)[1].sum(0), 1e-6)


def test_written_into_a_fresh_gradient_then_added():
    p = Parameter(np.zeros(7, np.float32))
    p.grad[...] = 5.0
    p.fresh = True  # stale values, counted as zeros
    targets = []

    def write(values, out):
        targets.append(out)
        out[...] = values

    grads.add_written(p, write, np.arange(7))
    assert targets[0] is p.grad and not p.fresh
    np.testing.assert_array_equal(p.grad, np.arange(7))
    grads.add_written(p, write, np.arange(7))
    assert targets[1] is not p.grad  # written elsewhere, then added
    np.testing.assert_array_equal(p.grad, 2 * np.arange(7))


def test_stale_fresh_gradient_counts_as_zeros():
    p = Parameter(np.zeros((20, 7), np.float32))
    p.grad[...] = 5.0
    p.fresh = True  # what a Model of writes_grads layers leaves before backward
    a, b = operands(0)
    grads.add_matmul(p, a, b)
    np.testing.assert_array_equal(p.grad, a @ b)


def test_unfresh_gradient_is_added_to():
    p = Parameter(np.zeros((20, 7), np.float32))
    p.grad[...] = 1.0  # holds something: never written over
    a, b = operands(0)
    grads.add_matmul(p, a, b)
    np.testing.assert_array_equal(p.grad, 1.0 + a @ b)


def test_model_gradients_are_the_reference_ones(monkeypatch):
    x = np.random.default_rng(3).standard_normal((16, 4, 5)).astype(np.float32)
    y = np.arange(16) % 3

    def gradients():
        net = Sequential([Flatten(), Dense(8, activation="relu"), Dense(3, activation="softmax")])
        net.build((4, 5), np.random.default_rng(0))
        model = Model(net, "sparse_categorical_crossentropy", Adam(1e-2))
        model.network.runs[1].kernel.regularizer = regularizers.get({"type": "l2", "l2": 0.01})
        for _ in range(3):  # the gradient is zeroed, so written afresh, every step
            model.train_step(x, y)
        model.compute_gradients(x, y)
        return model.parameters().flat_grad.copy()

    fast = gradients()  # gradients never zeroed: written afresh by every backward
    monkeypatch.setattr(grads, "add_matmul", grads.add_matmul_reference)
    monkeypatch.setattr(grads, "add_row_sums", grads.add_row_sums_reference)
    monkeypatch.setattr(Dense, "writes_grads", False)  # zeroed, then added to
    np.testing.assert_array_equal(fast, gradients())
    assert np.abs(fast).max() > 0
