"""The direct convolution and 2x2 max pool of a first layer (``kernels.direct_conv``) against
the plain convolution and pool (``conv_reference``, ``max_pool_reference``) in float64, and
the fused layer on this path through the finite-difference gradient check."""

import numpy as np
import pytest

from bptrain.nn import Conv2D, Dense, Flatten, MaxPool2D, Model, Sequential, check_model
from bptrain.nn.kernels import compiled as compiled_module
from bptrain.nn.kernels import direct_conv
from bptrain.nn.kernels.conv import conv_backward_reference, conv_reference
from bptrain.nn.kernels.pooling import max_pool_backward_reference, max_pool_reference
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.kernels.windows import Windows

pytest.importorskip("numba", reason="the direct loops need Numba (the fast extra)")

rng = np.random.default_rng(0)

# (channels, input height and width, kernel size, padding)
CASES = [(1, (12, 12), 3, "valid"), (3, (9, 8), 3, "same"), (2, (11, 10), (2, 3), "valid")]


@pytest.mark.parametrize("c, in_hw, kernel_size, padding", CASES)
@pytest.mark.parametrize("input_grad", [False, True])
def test_conv_and_pool_match_the_plain_ones(c, in_hw, kernel_size, padding, input_grad):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    conv = Windows.create(in_hw, (kh, kw), (1, 1), (1, 1), padding)
    pool = Windows.create(conv.out_hw, (2, 2), (2, 2), (1, 1), "valid")
    assert direct_conv.suits(conv, pool, c * kh * kw)
    n, f = 3, 5
    x = rng.normal(size=(n, c, *in_hw))
    kernel, bias = rng.normal(size=(f, c, kh, kw)), rng.normal(size=f)
    scratch = Scratch()
    pooled = direct_conv.forward(x, kernel, bias, conv, scratch)
    z = conv_reference(x, kernel, bias, conv)
    expected, argmax = max_pool_reference(z, pool)
    np.testing.assert_allclose(pooled.transpose(1, 0, 2, 3), expected, rtol=1e-13)

    dy = rng.normal(size=expected.shape)
    dkernel, dbias = np.ones_like(kernel), np.ones_like(bias)  # the gradients are added
    dx = direct_conv.backward(
        np.ascontiguousarray(dy.transpose(1, 0, 2, 3)), kernel, conv, dkernel, dbias, scratch,
        input_grad,
    )  # fmt: skip
    dz = max_pool_backward_reference(dy, argmax, z.shape, pool)
    dx_ref, dkernel_ref, dbias_ref = conv_backward_reference(dz, x, kernel, conv)
    np.testing.assert_allclose(dkernel, 1 + dkernel_ref, rtol=1e-12)
    np.testing.assert_allclose(dbias, 1 + dbias_ref, rtol=1e-12)
    if input_grad:
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    else:
        assert dx is None


def test_only_stride_1_convolutions_with_few_taps_and_2x2_pools():
    conv = Windows.create((8, 8), (3, 3), (1, 1), (1, 1), "valid")
    pool = Windows.create((6, 6), (2, 2), (2, 2), (1, 1), "valid")
    assert direct_conv.suits(conv, pool, 9)
    assert not direct_conv.suits(conv, pool, direct_conv.MAX_TAPS + 1)
    strided = Windows.create((8, 8), (3, 3), (2, 2), (1, 1), "valid")
    assert not direct_conv.suits(strided, pool, 9)
    pool3 = Windows.create((6, 6), (3, 3), (3, 3), (1, 1), "valid")
    assert not direct_conv.suits(conv, pool3, 9)


def first_layer_model(fuse: bool = True):
    network = Sequential(
        [Conv2D(12, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3, "softmax")],
        fuse=fuse,
    )
    network.build((1, 9, 9), np.random.default_rng(1), dtype=np.float64)
    return Model(network, "sparse_categorical_crossentropy", "adam")


def test_the_fused_layer_runs_it_where_it_pays(monkeypatch):
    x = rng.normal(size=(4, 1, 9, 9))
    model = first_layer_model()
    model.forward(x)
    assert not model.network.runs[0]._direct  # too small to pay
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 0)
    model.forward(x)
    assert model.network.runs[0]._direct


def test_a_model_on_this_path_trains_as_the_plain_layers(monkeypatch):
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 0)
    x, y = rng.normal(size=(6, 1, 9, 9)), np.array([0, 1, 2, 0, 1, 2])
    results = []
    for fuse in (False, True):
        model = first_layer_model(fuse)
        losses = [model.train_step(x, y) for _ in range(3)]
        results.append((losses, [p.value.copy() for p in model.network.parameters()]))
    assert model.network.runs[0]._direct
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    for fast, plain in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(fast, plain, rtol=1e-10)


def test_a_model_on_this_path_passes_the_gradient_check(monkeypatch):
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 0)
    model = first_layer_model()
    x, y = rng.normal(size=(4, 1, 9, 9)), np.array([0, 2, 1, 1])
    report = check_model(model, x, y)
    assert model.network.runs[0]._direct
    assert report.passed(1e-6), report
    assert len(report.errors) == 4
