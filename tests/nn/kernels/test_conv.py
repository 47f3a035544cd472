"""Conv2D and the fused ConvMaxPool2D against the plain convolution (im2col_reference plus one
GEMM) and the plain max pool, in float64."""

import numpy as np
import pytest

from bptrain.nn import Conv2D, MaxPool2D, Sequential
from bptrain.nn.kernels.conv import conv_backward_reference, conv_reference
from bptrain.nn.kernels.pooling import max_pool_backward_reference, max_pool_reference

rng = np.random.default_rng(0)

CONVS = [
    ((7, 8), {"kernel_size": 3}),
    ((6, 7), {"kernel_size": 3, "padding": "same"}),
    ((7, 8), {"kernel_size": (3, 2), "strides": 2, "padding": "same"}),
    ((9, 6), {"kernel_size": 3, "strides": (1, 2), "dilation": (2, 1), "padding": 2}),
]


@pytest.mark.parametrize("in_hw, kwargs", CONVS)
def test_conv2d_matches_the_plain_convolution(in_hw, kwargs):
    layer = Conv2D(4, **kwargs)
    model = Sequential([layer])
    model.build((3, *in_hw), rng, dtype=np.float64)
    model.needs_input_grad = True
    x = rng.normal(size=(2, 3, *in_hw))
    kernel, bias = layer.kernel.value, layer.bias.value
    bias[...] = rng.normal(size=bias.shape)
    y = model.forward(x)
    np.testing.assert_allclose(y, conv_reference(x, kernel, bias, layer.geometry), rtol=1e-12)
    dy = rng.normal(size=y.shape)
    dx = model.backward(dy)  # (the gradients start at zero)
    dx_ref, dkernel, dbias = conv_backward_reference(dy, x, kernel, layer.geometry)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12)
    np.testing.assert_allclose(layer.kernel.grad, dkernel, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, dbias, rtol=1e-12)


@pytest.mark.parametrize("in_hw, kwargs", CONVS)
def test_conv_max_pool_matches_the_plain_convolution_and_pool(in_hw, kwargs):
    conv, pool = Conv2D(32, activation="tanh", **kwargs), MaxPool2D(2)
    model = Sequential([conv, pool])
    model.build((1, *in_hw), rng, dtype=np.float64)
    model.needs_input_grad = True
    assert type(model.runs[0]).__name__ == "ConvMaxPool2D"
    x = rng.normal(size=(2, 1, *in_hw))
    kernel, bias = conv.kernel.value, conv.bias.value
    a = np.tanh(conv_reference(x, kernel, bias, conv.geometry))
    y_ref, argmax = max_pool_reference(a, pool.geometry)
    y = model.forward(x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)
    dy = rng.normal(size=y.shape)
    dx = model.backward(dy)
    da = max_pool_backward_reference(dy, argmax, a.shape, pool.geometry)
    dx_ref, dkernel, dbias = conv_backward_reference(da * (1 - a * a), x, kernel, conv.geometry)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.kernel.grad, dkernel, rtol=1e-10)
    np.testing.assert_allclose(conv.bias.grad, dbias, rtol=1e-10)
