"""The pooling kernels against the plain max pool (im2col with -inf padding, argmax, max)."""

import numpy as np
import pytest

from bptrain.nn import MaxPool2D
from bptrain.nn.kernels.layout import as_channel_major
from bptrain.nn.kernels.pooling import max_pool_backward_reference, max_pool_reference

rng = np.random.default_rng(0)

POOLS = [
    ((6, 6), {"pool_size": 2}),  # tiles
    ((7, 7), {"pool_size": 2}),  # tiles, last row and column left out
    ((7, 8), {"pool_size": 3, "strides": 2}),  # overlapping
    ((7, 8), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ((5, 5), {"pool_size": (2, 3), "strides": 1, "padding": "same"}),
]


def stored(x, channel_major):
    """x (N, C, H, W), stored NCHW or channel-major (as a Conv2D returns it)."""
    return as_channel_major(x).transpose(1, 0, 2, 3) if channel_major else x


@pytest.mark.parametrize("channel_major", [False, True])
@pytest.mark.parametrize("in_hw, kwargs", POOLS)
def test_max_pool_matches_the_plain_reference(in_hw, kwargs, channel_major):
    layer = MaxPool2D(**kwargs)
    layer.build((3, *in_hw), rng)
    for x in (rng.normal(size=(2, 3, *in_hw)), rng.integers(-1, 2, (2, 3, *in_hw)) * 1.0):
        y = layer.forward(stored(x, channel_major))
        y_ref, argmax = max_pool_reference(x, layer.geometry)
        np.testing.assert_array_equal(y, y_ref)
        dy = rng.normal(size=y.shape)
        dx = layer.backward(stored(dy, channel_major))
        dx_ref = max_pool_backward_reference(dy, argmax, x.shape, layer.geometry)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-15, atol=0)


def test_the_reference_breaks_ties_to_the_first_offset():
    x = np.zeros((1, 1, 2, 2))
    geometry = MaxPool2D(2)
    geometry.build((1, 2, 2), rng)
    y, argmax = max_pool_reference(x, geometry.geometry)
    dx = max_pool_backward_reference(np.ones_like(y), argmax, x.shape, geometry.geometry)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0], [0, 0]])
