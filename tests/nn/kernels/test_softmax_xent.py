"""The fused softmax cross-entropy (``kernels.softmax_xent``) against its NumPy reference and
the loss class's own passes: within rtol 1e-6 (float32) / 1e-13 (float64), since its exp is
LLVM's and its sums are sequential; its gradient checked by finite differences in float64."""

import numpy as np
import pytest

from bptrain.nn import Adam, Dense, Flatten, Model, Sequential, losses
from bptrain.nn.kernels import compiled, softmax_xent

pytest.importorskip("numba")
RTOL = {np.float32: 1e-6, np.float64: 1e-13}


def logits(dtype, n=32, c=10, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * 4).astype(dtype)
    z[0] += 300  # large logits: the row maximum keeps exp finite
    return z, rng.integers(0, c, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matches_the_reference(dtype):
    z, y = logits(dtype)
    value, grad = softmax_xent.softmax_xent_fused(z, y)
    ref_value, ref_grad = softmax_xent.softmax_xent_reference(z, y)
    assert grad.dtype == dtype
    assert value == pytest.approx(ref_value, rel=RTOL[dtype])
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL[dtype], atol=RTOL[dtype] / len(y))
    assert np.abs(grad.sum(axis=1)).max() < 1e-6  # each row: softmax minus a one-hot


def test_loss_class_fused_matches_its_own_passes():
    z, y = logits(np.float32, seed=1)
    plain, fast = (
        losses.get({"type": "sparse_categorical_crossentropy", "from_logits": True})
        for _ in range(2)
    )
    fast.model_size = compiled.MIN_SIZE
    value, ref_value = fast.forward(z, y), plain.forward(z, y)
    assert value == pytest.approx(ref_value, rel=RTOL[np.float32])
    np.testing.assert_allclose(fast.backward(), plain.backward(), rtol=1e-6, atol=1e-9)
    assert fast._g is not None and plain._g is None
    fast.forward(z.astype(np.float64), y)  # float64 (gradient checks) keeps the reference
    assert fast._g is None


def test_fused_gradient_by_finite_differences_in_float64():
    z, y = logits(np.float64, n=6, c=5, seed=2)
    _, grad = softmax_xent.softmax_xent_fused(z, y)
    eps, numeric = 1e-6, np.empty_like(z)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (
            softmax_xent.softmax_xent_fused(up, y)[0] - softmax_xent.softmax_xent_fused(down, y)[0]
        ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    assert np.abs(grad).max() > 0.01


def test_weighted_or_smoothed_losses_keep_the_reference():
    z, y = logits(np.float32)
    for spec in ({"label_smoothing": 0.1}, {}):
        loss = losses.get({"type": "sparse_categorical_crossentropy", "from_logits": True, **spec})
        loss.model_size = compiled.MIN_SIZE
        loss.forward(z, y, sample_weight=np.ones(len(y)) if not spec else None)
        assert loss._g is None


def test_models_big_enough_for_compiled_kernels_take_the_fused_loss():
    def model(units):
        net = Sequential(
            [Flatten(), Dense(units, activation="relu"), Dense(3, activation="softmax")]
        )
        net.build((10, 10), np.random.default_rng(0))
        return Model(net, "sparse_categorical_crossentropy", Adam(1e-3))

    small, big = model(4), model(compiled.MIN_SIZE // 100)
    assert small.step_loss.model_size < compiled.MIN_SIZE <= big.step_loss.model_size
    x = np.random.default_rng(0).standard_normal((8, 10, 10)).astype(np.float32)
    y = np.arange(8) % 3
    assert np.isfinite(big.train_step(x, y)) and big.step_loss._g is not None
    small.train_step(x, y)
    assert small.step_loss._g is None
