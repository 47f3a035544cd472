"""im2col / col2im: a convolution as one GEMM over the columns of its input's windows.

Every fast kernel here has a plain reference beside it (``*_reference``: pad, then one strided
view per kernel offset) that the tests hold it to.

Column layout: ``im2col`` fills cols (C, kh, kw, N, H', W'), the matrix (C*kh*kw, N*H'*W'), and
the layer computes ``kernel (F, C*kh*kw) @ cols``, one GEMM giving (F, N, H', W'); adding the
bias there and one transposed copy give NCHW. Measured alternatives (batch 64, 3x3, 32 -> 64
channels, 13x13 input, one thread, OpenBLAS AVX2 kernels): per-sample GEMMs straight into NCHW
(one batched matmul, (N, C*kh*kw, H'*W') columns) cost 2.76 ms against 2.62 for this GEMM plus
copy; position-major columns (N*H'*W', C*kh*kw) make every im2col write a scatter; "wide"
columns over whole input rows (H' x W instead of H' x W') make the copies contiguous but the
three GEMMs 18% bigger, which costs more than it saves. What is left of the copying is done in
two passes where that pays (``Windows.two_pass``).

Pool-ordered columns (``im2col_pooled``): when a convolution's output goes straight into a max
pool whose windows tile it, its columns can be put in the order of the pool's windows, (C, kh,
kw, ph, pw, N, H'', W'') with H'' = H' // ph, so the GEMM gives every window offset as its own
contiguous block and the pool needs no gather (nor its backward a scatter, nor the layer a
transposed copy). Output positions no pool window covers (the last row of an odd H') are not
computed: they cannot affect the loss. This pays when the columns are smaller than the output
(C*kh*kw < filters, e.g. a first layer on one input channel), since the strided copies then run
on the smaller array: see ``Conv2D.feeds``.
"""

from __future__ import annotations

import functools

from bptrain.nn import backend
from bptrain.nn.kernels.windows import Windows, gather, scatter, seen


@functools.cache
def pooled_offsets(geometry: Windows, pool: tuple[int, int]) -> list:
    """For a convolution of ``geometry`` whose output a tiling (ph, pw) pool reads:
    (i, j, a, b, out_rows, out_cols, in_rows, in_cols) for every kernel offset (i, j) and pool
    offset (a, b) that sees some input. Pooled position (h'', w'') of offset (a, b) is output
    position (ph*h'' + a, pw*w'' + b), which reads input pixel (ph*h''*sh + a*sh + i*dh - top,
    ...): a strided slice of stride ph*sh along the rows (pw*sw along the columns)."""
    per_axis = []
    for axis in (0, 1):
        size, k, p = geometry.in_hw[axis], geometry.kernel[axis], pool[axis]
        s, d = geometry.stride[axis], geometry.dilation[axis]
        n_out, step = geometry.out_hw[axis] // p, p * s
        found = [
            (i, a, seen(size, a * s + i * d - geometry.pad[2 * axis], step, n_out))
            for i in range(k)
            for a in range(p)
        ]
        per_axis.append([(i, a, *slices) for i, a, slices in found if slices])
    return [
        (i, j, a, b, orow, ocol, irow, icol)
        for i, a, orow, irow in per_axis[0]
        for j, b, ocol, icol in per_axis[1]
    ]


def im2col(x, geometry: Windows, out=None, work=None):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*H'*W'), rows ordered (c, i, j), columns (n, h', w').

    ``out`` (C, kh, kw, N, H', W') may be a reused buffer, zeroed once when allocated if the
    geometry is padded; so may ``work`` (kw, C, N, H, W') (see ``Windows.two_pass``).
    """
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = geometry.kernel, geometry.out_hw
    if out is None:
        out = backend.xp.zeros((c, kh, kw, n, ho, wo), dtype=x.dtype)
    gather(x.transpose(1, 0, 2, 3), geometry, out.transpose(1, 2, 0, 3, 4, 5), work)
    return out.reshape(c * kh * kw, n * ho * wo)


def col2im(cols, x_shape: tuple, geometry: Windows, work=None):
    """The adjoint of ``im2col``: cols (C*kh*kw, N*H'*W') -> dx (N, C, H, W), stored
    channel-major (a transposed view of a (C, N, H, W) array: see ``layout``); ``work`` as for
    ``im2col`` (its contents are overwritten)."""
    n, c, h, w = x_shape
    (kh, kw), (ho, wo) = geometry.kernel, geometry.out_hw
    dxt = backend.xp.empty((c, n, h, w), dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, ho, wo).transpose(1, 2, 0, 3, 4, 5)
    scatter(cols, geometry, dxt, work)
    return dxt.transpose(1, 0, 2, 3)


def im2col_pooled(x, geometry: Windows, pool: tuple[int, int], out):
    """x: (N, C, H, W) -> cols (C*kh*kw, ph*pw*N*H''*W''), columns in a (ph, pw) pool's window
    order (see the module docstring); ``out`` (C, kh, kw, ph, pw, N, H'', W'') is a buffer whose
    entries that fall into padding were zeroed once and are never written."""
    xt = x.transpose(1, 0, 2, 3)
    for i, j, a, b, orow, ocol, irow, icol in pooled_offsets(geometry, pool):
        out[:, i, j, a, b, :, orow, ocol] = xt[:, :, irow, icol]
    return out.reshape(out.shape[0] * out.shape[1] * out.shape[2], -1)


def col2im_pooled(cols, x_shape: tuple, geometry: Windows, pool: tuple[int, int]):
    """The adjoint of ``im2col_pooled``: cols -> dx (N, C, H, W), stored channel-major."""
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = geometry.kernel, pool
    ho, wo = geometry.out_hw[0] // ph, geometry.out_hw[1] // pw
    cols = cols.reshape(c, kh, kw, ph, pw, n, ho, wo)
    dxt = backend.xp.zeros((c, n, h, w), dtype=cols.dtype)
    for i, j, a, b, orow, ocol, irow, icol in pooled_offsets(geometry, pool):
        dxt[:, :, irow, icol] += cols[:, i, j, a, b, :, orow, ocol]
    return dxt.transpose(1, 0, 2, 3)


def im2col_reference(x, geometry: Windows, pad_value=0.0):
    """The plain im2col: pad x (N, C, H, W) with ``pad_value`` and copy one strided view per
    kernel offset (i, j). Returns cols (C*kh*kw, N*H'*W'), laid out as ``im2col``'s."""
    xp = backend.xp
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    ho, wo = geometry.out_hw
    top, bottom, left, right = geometry.pad
    padded = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (ho - 1) * sh + 1, sh)
            columns = slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)
            cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * ho * wo)


def col2im_reference(cols, x_shape: tuple, geometry: Windows):
    """The plain col2im, the adjoint of ``im2col_reference``: add each kernel offset's columns
    (C*kh*kw, N*H'*W') into a padded dx, then cut the padding off. Returns dx (N, C, H, W)."""
    xp = backend.xp
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    ho, wo = geometry.out_hw
    top, bottom, left, right = geometry.pad
    padded = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (ho - 1) * sh + 1, sh)
            columns = slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)
            padded[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, top : top + h, left : left + w]
