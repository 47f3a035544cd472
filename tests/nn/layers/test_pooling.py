import math

import numpy as np
import pytest

from bptrain.nn import AvgPool2D, GlobalAvgPool2D, MaxPool2D, check_layer
from bptrain.nn.kernels.layout import channel_major

rng = np.random.default_rng(0)

# (input shape per sample, pooling keyword arguments)
CASES = [
    ((3, 6, 8), {}),  # 2x2 windows tiling the input: the reshape fast path
    ((2, 7, 9), {}),  # tiling, last row and column in no window
    ((2, 7, 7), dict(pool_size=3, strides=2)),  # overlapping windows
    ((2, 7, 8), dict(pool_size=3, strides=2, padding="same")),
    ((2, 5, 5), dict(pool_size=2, padding="same")),
    ((1, 6, 9), dict(pool_size=(2, 3), strides=(1, 2))),
    ((2, 5, 6), dict(pool_size=3, strides=1, padding="same")),
]


def distinct(shape):
    """Tie-free inputs: a permutation of distinct values, so every window has one maximum."""
    return rng.permutation(math.prod(shape)).reshape(shape) / math.prod(shape) - 0.5


def windows_of(layer, x):
    """(N, C, H', W') lists of the real (unpadded) pixels of each window, from the definition."""
    (ph, pw), (sh, sw) = layer.pool_size, layer.strides
    h, w = x.shape[2:]
    if layer.padding == "same":
        ho, wo = math.ceil(h / sh), math.ceil(w / sw)
        top = max((ho - 1) * sh + ph - h, 0) // 2
        left = max((wo - 1) * sw + pw - w, 0) // 2
    else:
        ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
        top = left = 0
    out = {}
    for a in range(ho):
        for b in range(wo):
            r0, c0 = a * sh - top, b * sw - left
            rows = range(max(r0, 0), min(r0 + ph, h))
            cols = range(max(c0, 0), min(c0 + pw, w))
            out[a, b] = [(r, c) for r in rows for c in cols]
    return (ho, wo), out


def reference_pool(layer, x, reduce):
    (ho, wo), windows = windows_of(layer, x)
    y = np.zeros((*x.shape[:2], ho, wo))
    for (a, b), pixels in windows.items():
        values = np.stack([x[:, :, r, c] for r, c in pixels], axis=-1)
        y[:, :, a, b] = reduce(values, axis=-1)
    return y


@pytest.mark.parametrize("shape, kwargs", CASES)
def test_max_pool_forward_matches_definition(shape, kwargs):
    layer = MaxPool2D(**kwargs)
    out_shape = layer.build(shape, rng)
    x = distinct((3, *shape))
    y = layer.forward(x)
    assert y.shape == (3, *out_shape)
    np.testing.assert_array_equal(y, reference_pool(layer, x, np.max))


@pytest.mark.parametrize("shape, kwargs", CASES)
def test_avg_pool_forward_matches_definition(shape, kwargs):
    layer = AvgPool2D(**kwargs)
    out_shape = layer.build(shape, rng)
    x = rng.normal(size=(3, *shape))
    y = layer.forward(x)
    assert y.shape == (3, *out_shape)
    # "same" averages over the real pixels only (Keras)
    np.testing.assert_allclose(y, reference_pool(layer, x, np.mean), rtol=1e-12)


@pytest.mark.parametrize("shape, kwargs", CASES)
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_gradient(cls, shape, kwargs):
    report = check_layer(cls(**kwargs), distinct((2, *shape)))
    assert report.passed(1e-6), report


def test_fast_path_is_taken_when_windows_tile():
    layer = MaxPool2D(2)
    layer.build((3, 7, 9), rng)
    assert layer.geometry.tiles and not layer.geometry.covers
    assert MaxPool2D(2).build((3, 6, 8), rng) == (3, 3, 4)
    overlapping = MaxPool2D(3, strides=2)
    overlapping.build((3, 7, 7), rng)
    assert not overlapping.geometry.tiles


def test_max_pool_backward_routes_to_the_argmax():
    layer = MaxPool2D(2)
    layer.build((1, 4, 4), rng)
    x = np.array([[[[1, 5, 0, 0], [2, 3, 0, 9], [7, 7, 1, 1], [7, 6, 4, 1]]]], dtype=np.float32)
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0], [[5, 9], [7, 4]])
    dx = layer.backward(np.array([[[[10, 20], [30, 40]]]], dtype=np.float32))
    # ties (the 7s, the 0s) go to the first pixel of the window in row-major order, as in PyTorch
    expected = [[0, 10, 0, 0], [0, 0, 0, 20], [30, 0, 0, 0], [0, 0, 40, 0]]
    np.testing.assert_array_equal(dx[0, 0], expected)
    assert dx.dtype == np.float32


def test_max_pool_ties_send_the_gradient_once():
    layer = MaxPool2D(3, strides=2, padding="same")
    layer.build((2, 7, 7), rng)
    x = np.zeros((2, 2, 7, 7))  # every window is one big tie
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)
    assert np.count_nonzero(dx) <= dy.size
    np.testing.assert_allclose(dx.sum(), dy.sum())


def test_overlapping_windows_accumulate():
    layer = AvgPool2D(2, strides=1)
    layer.build((1, 3, 3), rng)
    layer.forward(np.zeros((1, 1, 3, 3)))
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_outputs_are_not_overwritten_by_the_next_call():
    layer = MaxPool2D(2)
    layer.build((2, 4, 4), rng)
    x1, x2 = distinct((2, 3, 2, 4, 4)).astype(np.float32)
    y1 = layer.forward(x1)
    kept = y1.copy()
    dx1 = layer.backward(np.ones_like(y1))
    kept_dx = dx1.copy()
    layer.backward(2 * np.ones_like(layer.forward(x2)))
    np.testing.assert_array_equal(y1, kept)
    np.testing.assert_array_equal(dx1, kept_dx)


def test_global_avg_pool():
    layer = GlobalAvgPool2D()
    assert layer.build((3, 4, 5), rng) == (3,)
    x = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(layer.forward(x), x.mean(axis=(2, 3)))
    dx = layer.backward(np.ones((2, 3)))
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 20))
    assert check_layer(GlobalAvgPool2D(), x).passed(1e-6)


def test_global_avg_pool_gradient_keeps_the_input_storage_order():
    # Below a GlobalAvgPool2D a Conv2D's output is stored channel-major (see layers/layout.py);
    # its gradient comes back stored the same way, with the same values.
    x = rng.normal(size=(3, 2, 4, 5))
    dy = rng.normal(size=(3, 2))
    layer = GlobalAvgPool2D()
    layer.build(x.shape[1:], rng)
    layer.forward(x)
    plain = layer.backward(dy)
    stored = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(layer.forward(stored), x.mean(axis=(2, 3)))
    dx = layer.backward(dy)
    assert channel_major(dx) and not channel_major(plain)
    np.testing.assert_array_equal(dx, plain)


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="pool_size must be positive"):
        MaxPool2D(0)
    with pytest.raises(ValueError, match="'valid' or 'same'"):
        AvgPool2D(2, padding=1)
    with pytest.raises(ValueError, match="expects \\(channels, height, width\\)"):
        MaxPool2D().build((4, 4), rng)
    with pytest.raises(ValueError, match="does not fit"):
        MaxPool2D(3).build((1, 2, 2), rng)
    assert MaxPool2D(2, strides=1).config() == {
        "pool_size": (2, 2),
        "strides": (1, 1),
        "padding": "valid",
    }
