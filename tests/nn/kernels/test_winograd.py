"""Winograd's F(2x2, 3x3) convolution: each compiled transform against its plain NumPy version,
the whole convolution against im2col's (``conv_reference``), and Conv2D on this path through
the finite-difference gradient check, in float64 (float32 within its round-off)."""

import numpy as np
import pytest

from bptrain.nn import Conv2D, MaxPool2D, Sequential, check_layer
from bptrain.nn.kernels import compiled as compiled_module
from bptrain.nn.kernels import winograd
from bptrain.nn.kernels.compiled import compiled
from bptrain.nn.kernels.conv import conv_backward_reference, conv_reference
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.kernels.windows import Windows

pytest.importorskip("numba", reason="the compiled transforms need Numba (the fast extra)")

rng = np.random.default_rng(0)

# (input height and width, padding): even and odd output sizes, padded or not
GEOMETRIES = [((13, 13), "valid"), ((12, 9), "same"), ((7, 8), (2, 1)), ((3, 4), "valid")]


def geometry(in_hw, padding) -> Windows:
    return Windows.create(in_hw, (3, 3), (1, 1), (1, 1), padding)


def channel_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3))


@pytest.mark.parametrize("in_hw, padding", GEOMETRIES)
def test_the_transforms_match_their_plain_versions(in_hw, padding):
    g = geometry(in_hw, padding)
    (th, tw), (c, n, f) = winograd.tiles(g), (3, 2, 4)
    x = rng.normal(size=(c, n, *in_hw))
    xpad = np.zeros((c, n, 2 * th + 2, 2 * tw + 2))
    top, _, left, _ = g.pad
    xpad[:, :, top : top + in_hw[0], left : left + in_hw[1]] = x
    v = np.empty((16, c, n * th * tw))
    compiled(winograd._input_tiles_loop)(xpad, th, tw, v)
    np.testing.assert_allclose(v, winograd.input_tiles_reference(x, g), atol=1e-13)

    m, bias = rng.normal(size=(16, f, n * th * tw)), rng.normal(size=f)
    y = np.empty((f, n, *g.out_hw))
    compiled(winograd._output_tiles_loop)(
        m, bias, th, tw, False, y, np.zeros((1, 1, 1, 1), np.int8)
    )
    np.testing.assert_allclose(y, winograd.output_tiles_reference(m, bias, n, g), atol=1e-13)

    dy, dm = rng.normal(size=y.shape), np.empty_like(m)
    compiled(winograd._output_tiles_adjoint_loop)(dy, th, tw, dm)
    np.testing.assert_allclose(dm, winograd.output_tiles_adjoint_reference(dy, g), atol=1e-13)

    dpad = np.zeros_like(xpad)
    compiled(winograd._input_tiles_adjoint_loop)(v, th, tw, dpad)
    dx = dpad[:, :, top : top + in_hw[0], left : left + in_hw[1]]
    reference = winograd.input_tiles_adjoint_reference(v, n, g)
    np.testing.assert_allclose(dx, reference, rtol=1e-13, atol=1e-13)

    kernel, u = rng.normal(size=(f, c, 3, 3)), np.empty((16, f, c))
    compiled(winograd._kernel_tiles_loop)(kernel, u)
    np.testing.assert_allclose(u, winograd.kernel_tiles(kernel), atol=1e-13)
    dkernel = np.ones_like(kernel)  # the adjoint adds
    compiled(winograd._kernel_tiles_adjoint_loop)(u, dkernel)
    np.testing.assert_allclose(dkernel, 1 + winograd.kernel_tiles_adjoint(u), atol=1e-13)


@pytest.mark.parametrize("in_hw, padding", GEOMETRIES)
def test_the_adjoint_transforms_are_adjoints(in_hw, padding):
    """<T a, b> == <a, T* b> for the plain input and output transforms."""
    g = geometry(in_hw, padding)
    (th, tw), (c, n) = winograd.tiles(g), (2, 3)
    x, v = rng.normal(size=(c, n, *in_hw)), rng.normal(size=(16, c, n * th * tw))
    left = np.vdot(winograd.input_tiles_reference(x, g), v)
    assert left == pytest.approx(np.vdot(x, winograd.input_tiles_adjoint_reference(v, n, g)))
    dy = rng.normal(size=(c, n, *g.out_hw))
    left = np.vdot(winograd.output_tiles_reference(v, None, n, g), dy)
    assert left == pytest.approx(np.vdot(v, winograd.output_tiles_adjoint_reference(dy, g)))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("in_hw, padding", GEOMETRIES)
def test_the_convolution_matches_im2col(in_hw, padding, dtype, rtol):
    g = geometry(in_hw, padding)
    c, n, f = 5, 3, 4
    x = rng.normal(size=(n, c, *in_hw)).astype(dtype)
    kernel, bias = rng.normal(size=(f, c, 3, 3)).astype(dtype), rng.normal(size=f).astype(dtype)
    scratch = Scratch()
    y = winograd.forward(x.transpose(1, 0, 2, 3), kernel, bias, g, scratch)
    assert y.dtype == dtype and y.flags.c_contiguous
    expected = conv_reference(x, kernel, bias, g)
    atol = rtol * np.abs(expected).max()
    np.testing.assert_allclose(y, channel_major(expected), rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        winograd.conv_winograd_reference(channel_major(x), kernel, bias, g),
        channel_major(expected),
        rtol=rtol,
        atol=atol,
    )
    dy = rng.normal(size=expected.shape).astype(dtype)
    dkernel, dbias = np.zeros_like(kernel), np.zeros_like(bias)
    dx = winograd.backward(channel_major(dy), dkernel, dbias, g, scratch, input_grad=True)
    dx_ref, dkernel_ref, dbias_ref = conv_backward_reference(dy, x, kernel, g)
    for got, want in ((dx, channel_major(dx_ref)), (dkernel, dkernel_ref), (dbias, dbias_ref)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_only_3x3_stride_1_undilated_convolutions_with_enough_channels(monkeypatch):
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 0)
    assert winograd.pays(16, 16, 1, geometry((8, 8), "same"))
    assert not winograd.pays(8, 64, 1, geometry((8, 8), "same"))  # too few channels
    assert not winograd.pays(16, 16, 1, Windows.create((8, 8), (3, 3), (2, 2), (1, 1), "same"))
    assert not winograd.pays(16, 16, 1, Windows.create((8, 8), (3, 3), (1, 1), (2, 2), "same"))
    assert not winograd.pays(16, 16, 1, Windows.create((8, 8), (5, 5), (1, 1), (1, 1), "same"))
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 1 << 16)
    assert not winograd.pays(16, 16, 1, geometry((8, 8), "same"))  # too small to pay
    assert winograd.pays(32, 64, 32, geometry((13, 13), "valid"))  # the MNIST CNN's second


def test_the_planes_are_not_whole_pages_apart():
    planes = winograd.planes(Scratch(), "V", 32, 1152, np.float32)
    assert planes.shape == (16, 32, 1152)
    assert planes.strides[0] % 4096 == 64 and planes[0].flags.c_contiguous


@pytest.fixture
def always(monkeypatch):
    """Winograd for every convolution that suits it, however small."""
    monkeypatch.setattr(compiled_module, "MIN_SIZE", 0)
    monkeypatch.setattr(winograd, "pays", lambda c, f, n, g: winograd.suits(g))


@pytest.mark.parametrize("in_hw, padding", GEOMETRIES)
@pytest.mark.parametrize("extra", [{}, {"use_bias": False, "activation": "relu"}])
def test_conv2d_on_this_path_passes_the_gradient_check(always, in_hw, padding, extra):
    layer = Conv2D(3, 3, padding=padding, **extra)
    report = check_layer(layer, rng.normal(size=(2, 2, *in_hw)))
    assert layer._winograd
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", "kernel", *(["bias"] if layer.use_bias else [])}


def test_conv2d_on_this_path_computes_what_im2col_computes(monkeypatch):
    x, dy = rng.normal(size=(4, 16, 9, 9)), rng.normal(size=(4, 16, 9, 9))
    results = []
    for on in (False, True):
        monkeypatch.setattr(winograd, "pays", lambda c, f, n, g, on=on: on)
        layer = Conv2D(16, 3, padding="same", activation="tanh")
        model = Sequential([layer])
        model.build((16, 9, 9), np.random.default_rng(1), dtype=np.float64)
        model.needs_input_grad = True
        y = model.forward(x)
        results.append((y, model.backward(dy), layer.kernel.grad.copy(), layer.bias.grad.copy()))
        assert layer._winograd == on
    for plain, fast in zip(*results, strict=True):
        np.testing.assert_allclose(fast, plain, rtol=1e-10, atol=1e-12)


def pooled_model(in_hw, padding, fuse: bool, seed: int = 1):
    layers = [Conv2D(16, 3, padding=padding, activation="relu"), MaxPool2D(2)]
    model = Sequential(layers, fuse=fuse)
    model.build((16, *in_hw), np.random.default_rng(seed), dtype=np.float64)
    model.needs_input_grad = True
    return model, layers[0]


@pytest.mark.parametrize("in_hw, padding", [((13, 13), "valid"), ((8, 9), "same")])
def test_pooling_in_the_output_transform_matches_the_plain_layers(always, in_hw, padding):
    x = rng.normal(size=(3, 16, *in_hw))
    results = []
    for fuse in (False, True):
        model, conv = pooled_model(in_hw, padding, fuse)
        y = model.forward(x)
        dy = np.random.default_rng(2).normal(size=y.shape)
        results.append((y, model.backward(dy), conv.kernel.grad.copy(), conv.bias.grad.copy()))
    assert model.runs[0]._winograd  # (the fused model: the conv pools in its output transform)
    for plain, fast in zip(*results, strict=True):
        np.testing.assert_allclose(fast, plain, rtol=1e-10, atol=1e-12)


def test_pooling_in_the_output_transform_passes_the_gradient_check(always):
    model, _ = pooled_model((7, 6), "same", fuse=True)
    report = check_layer(model, rng.normal(size=(2, 16, 7, 6)))
    assert model.runs[0]._winograd
    assert report.passed(1e-6), report


def test_pooled_tiles_are_the_windows_only(always, monkeypatch):
    """An odd output's last row and column, which no 2x2 window reads, get no tiles; the
    input's gradient still has the input's shape (zero where only they read)."""
    g = geometry((13, 13), "valid")  # 11x11 outputs, 5x5 windows
    assert winograd.tiles(g) == (6, 6) and winograd.tiles(g, pooled=True) == (5, 5)
    made, planes = [], winograd.planes
    monkeypatch.setattr(winograd, "planes", lambda *a: made.append(a[1:4]) or planes(*a))
    scratch, (c, n, f) = Scratch(), (16, 2, 16)
    x, kernel = rng.normal(size=(c, n, 13, 13)), rng.normal(size=(f, c, 3, 3))
    y = winograd.forward(x, kernel, None, g, scratch, pooled=True)
    assert y.shape == (f, n, 5, 5)
    assert made == [("winograd V", c, n * 25), ("winograd M", f, n * 25)]
    dx = winograd.backward(np.ones_like(y), np.zeros_like(kernel), None, g, scratch, True, True)
    assert dx.shape == x.shape and not dx[:, :, 12].any() and not dx[:, :, :, 12].any()
