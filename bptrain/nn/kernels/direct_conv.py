"""A first convolution with few input channels and the 2x2 max pool after it, as direct loops.

A network's first convolution reads few channels (1 for MNIST, 3 for colour), so its GEMM over
im2col columns is thin (K = C*kh*kw = 9 rows) and runs far below the core's speed, and the
work around it (the columns, the pool's windows, the gradient's scatter back into them)
costs more than the arithmetic. Here each output row is computed directly, the kernel's
C*kh*kw taps added in turn over a run of input pixels (a loop the compiler vectorizes), and
each pool window's maximum is taken at once, so the full-size output never exists:

    forward   z[f, n, y, x] = bias[f] + sum_{c,i,j} kernel[f, c, i, j] * x[n, c, y + i, x + j]
              pooled[f, n, Y, X] = max over the window's (a, b) of z[f, n, 2Y + a, 2X + b]
    backward  each window's gradient g goes to the position its maximum came from:
              dkernel[f, c, i, j] += sum g * x[n, c, 2Y + a + i, 2X + b + j];  dbias[f] += g
              (dx, which a first layer does not need, likewise: a plain scalar loop)

for stride 1, no dilation, and a 2x2 pool of stride 2. The plain version is im2col's
convolution and the plain max pool (``conv_reference``, ``max_pool_reference``), which the
tests hold these loops to. On the MNIST CNN's first layer (1 -> 32 channels, batch 32, one
thread) forward and pool take 0.5 ms and the backward 0.4, against 0.8 and 1.2 for
``ConvMaxPool2D``'s GEMMs over pool-ordered columns. Shapes: x (N, C, H, W) is copied into a
zero-padded (N, C, Hp, Wp) work array; pooled (F, N, H'', W'') is channel-major.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels.compiled import compiled, usable
from bptrain.nn.kernels.windows import Windows

MAX_TAPS = 27  # C*kh*kw: up to a 3x3 kernel on colour images


def suits(conv: Windows, pool: Windows, taps: int) -> bool:
    """Whether a convolution of geometry ``conv`` with ``taps`` = C*kh*kw, pooled by ``pool``,
    can run here: stride 1, undilated, few taps, and a 2x2 pool of stride 2, unpadded."""
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and taps <= MAX_TAPS
        and pool.kernel == (2, 2)
        and pool.stride == (2, 2)
        and pool.pad == (0, 0, 0, 0)
    )


def pays(size: int) -> bool:
    """Whether the loops can run and pay for work of ``size`` elements (``compiled.usable``:
    the NumPy backend, Numba, at least ``compiled.MIN_SIZE``)."""
    return usable(_forward_loop, (), size)


def _forward_loop(xpad, kernel, bias, pooled, argmax, z):
    """pooled[f, n] (F, N, H'', W'') = the maximum of each 2x2 window (stride 2) of the
    convolution of xpad[n] (N, C, Hp, Wp; rows past the input's padded height are slack) with
    kernel[f] plus bias[f]; argmax the window offset 2*a + b it came from (the first on ties, as
    ``max_of_windows``). The output rows are computed "wide", as one run of rows*Wp positions
    (the last kw - 1 of each row are junk that no window reads), so each tap is one long
    multiply-add over the run at a fixed offset; z (at least that long) is a work array."""
    fs, ns, hp, wp = pooled.shape
    cs, kh, kw = kernel.shape[1:]
    width = xpad.shape[3]
    plane = xpad.shape[2] * width
    run = 2 * hp * width
    down = np.uint64(width)  # (unsigned indices: no wraparound check for negative ones)
    for n in range(ns):
        xs = xpad[n].ravel()
        for f in range(fs):
            b = bias[f]
            for q in range(run):
                z[q] = b
            for c in range(cs):
                for i in range(kh):
                    for j in range(kw):
                        w = kernel[f, c, i, j]
                        # (a slice, not xs[off + q]: a computed index may be negative for all
                        # Numba knows, and its wraparound check stops the vectorizing: 6x slower)
                        tap = xs[c * plane + i * width + j :]
                        for q in range(run):
                            z[q] += w * tap[q]
            for py in range(hp):
                for px in range(wp):
                    at = np.uint64(2 * py * width + 2 * px)
                    best, k = z[at], 0
                    if z[at + 1] > best:
                        best, k = z[at + 1], 1
                    if z[at + down] > best:
                        best, k = z[at + down], 2
                    if z[at + down + 1] > best:
                        best, k = z[at + down + 1], 3
                    pooled[f, n, py, px] = best
                    argmax[f, n, py, px] = k


def _backward_loop(dpooled, argmax, xpad, dkernel, dz):
    """dkernel (F, C, kh, kw) += each window's gradient times the input under its maximum's
    kernel taps. Per image and filter the gradients are put at their maxima in a wide run of
    zeros dz (see ``_forward_loop``), and each tap's gradient is the dot product of dz with the
    input run at the tap's offset (compiled with its sum reassociated, so it runs in vector
    lanes)."""
    fs, ns, hp, wp = dpooled.shape
    cs, kh, kw = dkernel.shape[1:]
    width = xpad.shape[3]
    plane = xpad.shape[2] * width
    run = dz.size
    for n in range(ns):
        xs = xpad[n].ravel()
        for f in range(fs):
            dz[:] = 0
            for py in range(hp):
                for px in range(wp):
                    k = argmax[f, n, py, px]
                    dz[(2 * py + (k >> 1)) * width + 2 * px + (k & 1)] = dpooled[f, n, py, px]
            for c in range(cs):
                for i in range(kh):
                    for j in range(kw):
                        tap = xs[c * plane + i * width + j :]
                        acc = dz.dtype.type(0)
                        for q in range(run):
                            acc += dz[q] * tap[q]
                        dkernel[f, c, i, j] += acc


def _input_gradient_loop(dpooled, argmax, kernel, dxpad):
    """dxpad (N, C, Hp, Wp) += each window's gradient times the kernel, at its maximum's
    position (for a layer that is not the first: a plain scalar loop)."""
    fs, ns, hp, wp = dpooled.shape
    cs, kh, kw = kernel.shape[1:]
    for f in range(fs):
        for n in range(ns):
            for py in range(hp):
                for px in range(wp):
                    g = dpooled[f, n, py, px]
                    k = argmax[f, n, py, px]
                    y, x = 2 * py + k // 2, 2 * px + k % 2
                    for c in range(cs):
                        for i in range(kh):
                            for j in range(kw):
                                dxpad[n, c, y + i, x + j] += g * kernel[f, c, i, j]


def padded_input(x, geometry: Windows, run: int, scratch):
    """x (N, C, H, W) copied into a scratch array with the convolution's zero padding and enough
    zero rows below for a wide ``run`` from any tap's offset (zeroed once; only the inside is
    written)."""
    n, c, h, w = x.shape
    top, bottom, left, right = geometry.pad
    (kh, kw), width = geometry.kernel, w + left + right
    # the last tap's run ends (kh - 1) * width + kw - 1 + run elements into a channel's plane
    rows = max(h + top + bottom, -(-((kh - 1) * width + kw - 1 + run) // width))
    return scratch.padded("direct x", x, (n, c, rows, width), top, left)


def wide_run(geometry: Windows) -> int:
    """The length of the wide run of output rows the pool's windows cover (an even number of
    them), rounded up to a multiple of 16."""
    width = geometry.in_hw[1] + geometry.pad[2] + geometry.pad[3]
    return -(-(geometry.out_hw[0] // 2) * 2 * width // 16) * 16


def forward(x, kernel, bias, geometry: Windows, scratch):
    """pooled (F, N, H'', W''): the 2x2 window maxima of the convolution of x (N, C, H, W); the
    padded input and the maxima's offsets stay in ``scratch`` for ``backward``."""
    xp = backend.xp
    ho, wo = geometry.out_hw
    run = wide_run(geometry)
    xpad = padded_input(x, geometry, run, scratch)
    pooled = xp.empty((len(kernel), len(x), ho // 2, wo // 2), dtype=x.dtype)
    argmax = scratch.get("direct argmax", pooled.shape, np.int8)
    b = bias if bias is not None else scratch.get("zero bias", (len(kernel),), x.dtype, fill=0)
    z = scratch.get("direct z", (run,), x.dtype)
    compiled(_forward_loop)(xpad, kernel, b, pooled, argmax, z)
    return pooled


def backward(dpooled, kernel, geometry: Windows, dkernel, dbias, scratch, input_grad: bool):
    """dkernel += and dbias += (unless None) the gradients from dpooled (F, N, H'', W'');
    returns dx (N, C, H, W) when ``input_grad``, else None."""
    xp = backend.xp
    dpooled = xp.ascontiguousarray(dpooled)
    argmax, xpad = scratch["direct argmax"], scratch["direct x"]
    dz = scratch.get("direct dz", (wide_run(geometry),), dkernel.dtype)
    compiled(_backward_loop, reassociate=True)(dpooled, argmax, xpad, dkernel, dz)
    if dbias is not None:
        dbias += dpooled.reshape(len(dpooled), -1).sum(axis=1)
    if not input_grad:
        return None
    dxpad = xp.zeros_like(xpad)
    compiled(_input_gradient_loop)(dpooled, argmax, kernel, dxpad)
    top, _, left, _ = geometry.pad
    h, w = geometry.in_hw
    return dxpad[:, :, top : top + h, left : left + w]
