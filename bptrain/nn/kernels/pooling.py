"""Pooling kernels: windows gathered offset-major, their maximum and argmax, and gradients
sent back to the window pixels.

Shapes: an image batch x (A, B, H, W), where (A, B) is (N, C), or (C, N) for a batch stored
channel-major (``layout``); windows (k, A, B, H', W') for the k = kh*kw window offsets, the
offset of window pixel (i, j) being i*kw + j; outputs and argmax (A, B, H', W').

The fast path gathers the windows into a reused buffer, one strided copy per offset (one
reshape view when the windows tile the input), so every later operation runs on whole
contiguous (A, B, H', W') arrays, which NumPy does at full speed; operating on the stride-2
views directly measured 1.3x slower, reducing over the small window axes of a reshape 25x.
The plain references (``max_pool_reference``, ``max_pool_backward_reference``) are chainer's
algorithm: im2col with -inf padding, argmax, max.
"""

from __future__ import annotations

import functools

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels.im2col import col2im_reference, im2col_reference
from bptrain.nn.kernels.windows import Windows, gather, scatter


def gather_windows(x, geometry: Windows, scratch, pad_value: float):
    """x (A, B, H, W) -> windows (k, A, B, H', W'), a scratch array whose entries that fall
    into padding hold ``pad_value`` (written once, never overwritten)."""
    shape = (*geometry.kernel, *x.shape[:2], *geometry.out_hw)
    windows = scratch.get("windows", shape, x.dtype, fill=pad_value)
    gather(x, geometry, windows)
    return windows.reshape(-1, *shape[2:])


def max_of_windows(windows, scratch):
    """(y, argmax) over k windows of one shape S (an array (k, *S) or a list of k arrays):
    y (S) their maximum, a new array; argmax (S) the first offset holding it (ties go to the
    first, as in PyTorch), as the smallest integer type, in ``scratch``.

    "argmax = k where better" is written as a maximum (k grows), which, unlike np.where or
    copyto(where=), runs at full vector speed."""
    xp = backend.xp
    y = windows[0].copy()
    argmax = scratch.get("argmax", y.shape, np.min_scalar_type(len(windows)))
    argmax.fill(0)
    better = scratch.get("better", y.shape, bool)
    k_if_better = scratch.get("k_if_better", y.shape, argmax.dtype)
    for k in range(1, len(windows)):
        xp.greater(windows[k], y, out=better)  # strict: an equal later value does not win
        xp.maximum(y, windows[k], out=y)
        xp.multiply(better, argmax.dtype.type(k), out=k_if_better)
        xp.maximum(argmax, k_if_better, out=argmax)
    return y, argmax


def argmax_hits(argmax, k: int, scratch, axis: int = 0):
    """hit (bool, in ``scratch``): argmax (S) == offset, for each of the k offsets, along a
    new ``axis``: (k, *S) for axis 0, (S[0], k, *S[1:]) for axis 1."""
    xp = backend.xp
    shape = (*argmax.shape[:axis], k, *argmax.shape[axis:])
    hit = scratch.get("hit", shape, bool)
    offsets = xp.arange(k, dtype=argmax.dtype).reshape(-1, *(1,) * (argmax.ndim - axis))
    xp.equal(xp.expand_dims(argmax, axis), offsets, out=hit)
    return hit


def window_gradient(dy, factor, geometry: Windows, x_shape: tuple, scratch):
    """dx (``x_shape``, (A, B, H, W)) whose pixel at window offset k of every window is
    ``dy * factor(k)`` (factor(k): an array of dy's shape (A, B, H', W'), a scalar, or a
    per-position (H', W') array), added up where windows overlap, zero where none reaches.

    Disjoint windows get each product written straight into its strided place in dx: going
    through a buffer and ``scatter`` is slower, and NumPy's contiguous-to-strided copy is
    erratic (a 2x2 pool over 32x32x28x28 float32: 1.07 ms against 0.37 this way)."""
    xp = backend.xp
    pw = geometry.kernel[1]
    if geometry.disjoint:
        dx = (xp.empty if geometry.covers else xp.zeros)(x_shape, dtype=dy.dtype)
        for i, j, region, view in geometry.window_views(dx):
            f = factor(i * pw + j)
            xp.multiply(dy[region], f[region] if xp.ndim(f) else f, out=view)
        return dx
    # Overlapping windows: every offset's product in a buffer (the windows' scratch, unless
    # padding values must survive in it), then summed into dx.
    name = "parts" if geometry.padded else "windows"
    parts = scratch.get(name, (*geometry.kernel, *dy.shape), dy.dtype)
    for k, part in enumerate(parts.reshape(-1, *dy.shape)):
        xp.multiply(dy, factor(k), out=part)
    return scatter(parts, geometry, xp.empty(x_shape, dtype=dy.dtype))


@functools.cache
def window_sizes(geometry: Windows) -> np.ndarray:
    """The number of real (unpadded) pixels in each window, (H', W'), as float64."""
    count = np.zeros(geometry.out_hw)
    for _, _, orow, ocol, _, _ in geometry.offsets():
        count[orow, ocol] += 1
    return count


def max_pool_reference(x, geometry: Windows):
    """The plain max pool: x (N, C, H, W) -> (y (N, C, H', W'), argmax (N*C*H'*W',)), each
    image channel's windows as the columns of ``im2col_reference`` with -inf padding."""
    n, c, h, w = x.shape
    cols = im2col_reference(x.reshape(n * c, 1, h, w), geometry, pad_value=-np.inf)
    argmax = cols.argmax(axis=0)  # (kh*kw, N*C*H'*W') -> the first maximum's offset
    return cols.max(axis=0).reshape(n, c, *geometry.out_hw), argmax


def max_pool_backward_reference(dy, argmax, x_shape: tuple, geometry: Windows):
    """The plain max pool backward: dy (N, C, H', W') -> dx (``x_shape``), each gradient sent
    to its window's argmax pixel by ``col2im_reference``."""
    n, c, h, w = x_shape
    dcols = backend.xp.zeros((geometry.kernel[0] * geometry.kernel[1], dy.size), dtype=dy.dtype)
    dcols[argmax, backend.xp.arange(dy.size)] = dy.reshape(-1)
    return col2im_reference(dcols, (n * c, 1, h, w), geometry).reshape(x_shape)
