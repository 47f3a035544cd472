import numpy as np
import pytest

from bptrain.nn.kernels.im2col import (
    col2im,
    col2im_pooled,
    col2im_reference,
    im2col,
    im2col_pooled,
    im2col_reference,
)
from bptrain.nn.kernels.layout import channel_major
from bptrain.nn.kernels.windows import Windows
from tests.nn.kernels.test_windows import GEOMETRIES

rng = np.random.default_rng(0)


def reference_im2col(x, g: Windows):
    """Element by element from the definition: zero where the window reads padding."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
    top, _, left, _ = g.pad
    ho, wo = g.out_hw
    cols = np.zeros((c, kh, kw, n, ho, wo))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for a in range(ho):
                    for b in range(wo):
                        r, q = a * sh + i * dh - top, b * sw + j * dw - left
                        if 0 <= r < h and 0 <= q < w:
                            cols[ci, i, j, :, a, b] = x[:, ci, r, q]
    return cols.reshape(c * kh * kw, n * ho * wo)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_matches_definition(geometry):
    g = Windows.create(*geometry)
    x = rng.normal(size=(2, 3, *g.in_hw))
    np.testing.assert_array_equal(im2col(x, g), reference_im2col(x, g))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(geometry):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: col2im adds each column entry back to the
    # pixel it came from, overlaps accumulating and padding dropped.
    g = Windows.create(*geometry)
    x = rng.normal(size=(2, 3, *g.in_hw))
    cols = rng.normal(size=im2col(x, g).shape)
    lhs = float((im2col(x, g) * cols).sum())
    rhs = float((x * col2im(cols, x.shape, g)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_reused_buffers_keep_padding_zero():
    g = Windows.create((5, 5), (3, 3), padding="same")
    out = np.zeros((2, 3, 3, 4, 5, 5))
    first = im2col(rng.normal(size=(4, 2, 5, 5)), g, out=out).copy()
    x = rng.normal(size=(4, 2, 5, 5))
    np.testing.assert_array_equal(im2col(x, g, out=out), reference_im2col(x, g))
    assert not np.array_equal(first, out.reshape(first.shape))


def test_col2im_returns_a_channel_major_batch():
    g = Windows.create((5, 6), (3, 3))
    dx = col2im(rng.normal(size=(2 * 9, 3 * 3 * 4)), (3, 2, 5, 6), g)
    assert dx.shape == (3, 2, 5, 6) and channel_major(dx)


@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if Windows.create(*g).two_pass])
def test_two_pass_copies_match_the_direct_ones(geometry):
    g = Windows.create(*geometry)
    (kh, kw), (ho, wo) = g.kernel, g.out_hw
    x = rng.normal(size=(2, 3, *g.in_hw))
    work = np.zeros((kw, 3, 2, g.in_hw[0], wo))
    for _ in range(2):  # the work array is reused: padding entries must stay zero
        np.testing.assert_array_equal(im2col(x, g, work=work), reference_im2col(x, g))
        cols = rng.normal(size=(3 * kh * kw, 2 * ho * wo))
        np.testing.assert_allclose(
            col2im(cols, x.shape, g, work=np.full(work.shape, 5.0)),
            col2im(cols, x.shape, g),
            rtol=1e-12,
        )


def test_two_pass_only_where_it_pays():
    assert Windows.create((13, 13), (3, 3)).two_pass
    assert not Windows.create((13, 13), (3, 3), (2, 2)).two_pass  # rows are not contiguous
    assert not Windows.create((13, 13), (1, 3)).two_pass  # one row: nothing to save
    assert not Windows.create((12, 12), (2, 2), (2, 2)).two_pass  # tiles: one reshape is best


def reference_pooled_cols(x, g: Windows, pool):
    """``reference_im2col``'s columns reordered into (ph, pw) pool windows: column
    (a, b, n, h'', w'') is output position (ph*h'' + a, pw*w'' + b) of image n."""
    c, k = x.shape[1], g.kernel[0] * g.kernel[1]
    (ph, pw), (ho, wo) = pool, g.out_hw
    cols = reference_im2col(x, g).reshape(c * k, len(x), ho, wo)
    hp, wp = ho // ph, wo // pw
    cols = cols[:, :, : hp * ph, : wp * pw].reshape(c * k, len(x), hp, ph, wp, pw)
    return cols.transpose(0, 3, 5, 1, 2, 4).reshape(c * k, -1)


POOLED = [
    (g, pool)
    for g in GEOMETRIES
    for pool in [(2, 2), (3, 2)]
    if all(o >= p for o, p in zip(Windows.create(*g).out_hw, pool, strict=True))
]


@pytest.mark.parametrize("geometry, pool", POOLED)
def test_pooled_columns_are_the_columns_in_window_order(geometry, pool):
    g = Windows.create(*geometry)
    x = rng.normal(size=(2, 3, *g.in_hw))
    (ho, wo), (ph, pw) = g.out_hw, pool
    out = np.zeros((3, *g.kernel, ph, pw, 2, ho // ph, wo // pw))
    for _ in range(2):  # a reused buffer: entries that read padding stay zero
        x = rng.normal(size=x.shape)
        cols = im2col_pooled(x, g, pool, out)
        np.testing.assert_array_equal(cols, reference_pooled_cols(x, g, pool))


@pytest.mark.parametrize("geometry, pool", POOLED)
def test_col2im_pooled_is_the_adjoint_of_im2col_pooled(geometry, pool):
    g = Windows.create(*geometry)
    x = rng.normal(size=(2, 3, *g.in_hw))
    (ho, wo), (ph, pw) = g.out_hw, pool
    cols_x = im2col_pooled(x, g, pool, np.zeros((3, *g.kernel, ph, pw, 2, ho // ph, wo // pw)))
    cols = rng.normal(size=cols_x.shape)
    dx = col2im_pooled(cols, x.shape, g, pool)
    assert channel_major(dx) or 1 in x.shape[:2]
    assert float((cols_x * cols).sum()) == pytest.approx(float((x * dx).sum()), rel=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_matches_its_reference_in_the_source(geometry):
    g = Windows.create(*geometry)
    x = rng.normal(size=(2, 3, *g.in_hw))
    np.testing.assert_array_equal(im2col_reference(x, g), reference_im2col(x, g))
    np.testing.assert_array_equal(im2col(x, g), im2col_reference(x, g))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_matches_its_reference_in_the_source(geometry):
    g = Windows.create(*geometry)
    x_shape = (2, 3, *g.in_hw)
    cols = rng.normal(size=im2col_reference(np.zeros(x_shape), g).shape)
    np.testing.assert_allclose(
        col2im(cols, x_shape, g), col2im_reference(cols, x_shape, g), rtol=1e-12, atol=1e-15
    )
