"""A 3x3 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2015).

im2col computes each output as 9 multiply-adds per input channel: 36 for a 2x2 block of outputs.
Winograd's algorithm gets the same 2x2 block from a 4x4 input tile with 16 multiplies, after
cheap transforms that only add and subtract (and halve, for the kernel):

    Y = A^T [ (G g G^T) * (B^T d B) ] A      (* elementwise, summed over input channels)

with d a 4x4 input tile, g the 3x3 kernel and Y the 2x2 output block (the matrices below).
Summed over channels, the 16 elementwise products become 16 independent GEMMs, one per tile
position (xi, nu) of the 4x4 transformed tiles:

    forward    V = B^T d B  (16, C, P);  U = G g G^T  (16, F, C);  M = U @ V;  y = A^T M A
    backward   dM = A dy A^T;  dU = dM @ V^T;  dg = G^T dU G;  dV = U^T @ dM;  dx = B dV B^T

where P = N * (tiles per image), tiles 2 output pixels apart. The backward lines are the
adjoints of the forward ones (every step is linear), so the gradients are exact for what the
forward computes; they differ from im2col's only by float round-off. The three GEMMs do
16/36 of im2col's multiplies on whole tiles (output sizes that are not even waste part of the
last tile row and column); the transforms replace im2col's copies and col2im's scatter.

The transforms are loops compiled by Numba (``*_loop``); beside them are plain NumPy versions
(``*_reference``: strided views and ``einsum`` with the matrices) that the tests hold them to,
and ``conv_winograd_reference``, the whole convolution in a few readable lines.
Shapes are channel-major, as the convolution layers store batches (``layout``): x (C, N, H, W),
y (F, N, H', W'), kernel g (F, C, 3, 3).
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels.compiled import compiled, usable
from bptrain.nn.kernels.windows import Windows

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def suits(geometry: Windows) -> bool:
    """Whether a convolution of ``geometry`` is a 3x3 one at stride 1, undilated."""
    return geometry.kernel == (3, 3) and geometry.stride == (1, 1) and geometry.dilation == (1, 1)


def tiles(geometry: Windows, pooled: bool = False) -> tuple[int, int]:
    """Tiles per image along each axis: one per 2x2 block of outputs. ``pooled`` (the output
    goes to a 2x2 max pool of stride 2, see ``forward``): one per pool window, so an odd output
    size's last row or column, which no window reads, gets no tiles (on the MNIST CNN's 11x11
    output, 5x5 tiles instead of 6x6: 31% fewer multiplies)."""
    ho, wo = geometry.out_hw
    return (ho // 2, wo // 2) if pooled else ((ho + 1) // 2, (wo + 1) // 2)


def _padded_shape(c: int, n: int, th: int, tw: int, geometry: Windows) -> tuple:
    """The shape of the zero-padded input the tiles read: (C, N, 2*th + 2, 2*tw + 2), at least
    as large as the input with its top and left padding (pooled tiles may not read the last
    rows, but the input's gradient is cut from the same array)."""
    top, _, left, _ = geometry.pad
    h, w = geometry.in_hw
    return c, n, max(2 * th + 2, top + h), max(2 * tw + 2, left + w)


# -- the plain versions ------------------------------------------------------------------------


def _padded_tiles(x, geometry: Windows):
    """x (C, N, H, W) zero-padded as the tiles read it, and its (C, N, th, tw, 4, 4) tiles."""
    xp = backend.xp
    th, tw = tiles(geometry)
    top, _, left, _ = geometry.pad
    h, w = geometry.in_hw
    hp, wp = 2 * th + 2, 2 * tw + 2
    padded = xp.zeros((*x.shape[:2], hp, wp), dtype=x.dtype)
    padded[:, :, top : top + h, left : left + w] = x  # (hp >= H' + 2 = h + both pads)
    s = padded.strides
    view = np.lib.stride_tricks.as_strided(
        padded, (*x.shape[:2], th, tw, 4, 4), (s[0], s[1], 2 * s[2], 2 * s[3], s[2], s[3])
    )
    return padded, view


def input_tiles_reference(x, geometry: Windows):
    """V (16, C, P) = B^T d B of every 4x4 input tile d of x (C, N, H, W)."""
    c, n = x.shape[:2]
    d = _padded_tiles(x, geometry)[1]
    bt = backend.xp.asarray(BT, dtype=x.dtype)
    v = backend.xp.einsum("ia,cnyxab,jb->ijcnyx", bt, d, bt)
    return v.reshape(16, c, -1)


def output_tiles_reference(m, bias, n: int, geometry: Windows):
    """y (F, N, H', W') = A^T M A of every tile of M (16, F, P), cut to H' x W', plus bias."""
    th, tw = tiles(geometry)
    f = m.shape[1]
    at = backend.xp.asarray(AT, dtype=m.dtype)
    y = backend.xp.einsum("ai,ijfnyx,bj->fnyaxb", at, m.reshape(4, 4, f, n, th, tw), at)
    ho, wo = geometry.out_hw
    y = y.reshape(f, n, 2 * th, 2 * tw)[:, :, :ho, :wo]
    return y + bias[:, None, None, None] if bias is not None else y


def kernel_tiles(g):
    """U (16, F, C) = G g G^T of every 3x3 kernel in g (F, C, 3, 3) (small: NumPy is fine)."""
    gm = backend.xp.asarray(G, dtype=g.dtype)
    return backend.xp.einsum("ia,fcab,jb->ijfc", gm, g, gm).reshape(16, *g.shape[:2])


def kernel_tiles_adjoint(du):
    """dg (F, C, 3, 3) = G^T dU G: the adjoint of ``kernel_tiles``."""
    gm = backend.xp.asarray(G, dtype=du.dtype)
    return backend.xp.einsum("ia,ijfc,jb->fcab", gm, du.reshape(4, 4, *du.shape[1:]), gm)


def output_tiles_adjoint_reference(dy, geometry: Windows):
    """dM (16, F, P) = A dY A^T of every 2x2 block dY of dy (F, N, H', W') (zero past it)."""
    xp = backend.xp
    f, n = dy.shape[:2]
    th, tw = tiles(geometry)
    ho, wo = geometry.out_hw
    blocks = xp.zeros((f, n, 2 * th, 2 * tw), dtype=dy.dtype)
    blocks[:, :, :ho, :wo] = dy
    at = xp.asarray(AT, dtype=dy.dtype)
    dm = xp.einsum("ai,fnyaxb,bj->ijfnyx", at, blocks.reshape(f, n, th, 2, tw, 2), at)
    return dm.reshape(16, f, -1)


def input_tiles_adjoint_reference(dv, n: int, geometry: Windows):
    """dx (C, N, H, W) = the sum of B dV B^T over the tiles that read each pixel: the adjoint
    of ``input_tiles``; dv (16, C, P)."""
    xp = backend.xp
    th, tw = tiles(geometry)
    c = dv.shape[1]
    bt = xp.asarray(BT, dtype=dv.dtype)
    dd = xp.einsum("ia,ijcnyx,jb->cnyxab", bt, dv.reshape(4, 4, c, n, th, tw), bt)
    padded = xp.zeros((c, n, 2 * th + 2, 2 * tw + 2), dtype=dv.dtype)
    for a in range(4):
        for b in range(4):
            padded[:, :, a : a + 2 * th : 2, b : b + 2 * tw : 2] += dd[..., a, b]
    top, _, left, _ = geometry.pad
    h, w = geometry.in_hw
    return padded[:, :, top : top + h, left : left + w]


def conv_winograd_reference(x, kernel, bias, geometry: Windows):
    """The whole convolution, plainly: x (C, N, H, W) -> y (F, N, H', W')."""
    v = input_tiles_reference(x, geometry)
    return output_tiles_reference(kernel_tiles(kernel) @ v, bias, x.shape[1], geometry)


# -- the compiled transforms -------------------------------------------------------------------


def _kernel_tiles_loop(g, u):
    """u[:, f, c] = G g[f, c] G^T for every 3x3 kernel; u (16, F, C)."""
    fs, cs = g.shape[:2]
    r = np.empty((4, 3), dtype=u.dtype)
    for f in range(fs):
        for c in range(cs):
            k = g[f, c]
            for b in range(3):  # G g: rows
                r[0, b] = k[0, b]
                r[1, b] = (k[0, b] + k[2, b]) * 0.5 + k[1, b] * 0.5
                r[2, b] = (k[0, b] + k[2, b]) * 0.5 - k[1, b] * 0.5
                r[3, b] = k[2, b]
            for a in range(4):  # (G g) G^T: columns
                u[4 * a, f, c] = r[a, 0]
                u[4 * a + 1, f, c] = (r[a, 0] + r[a, 2]) * 0.5 + r[a, 1] * 0.5
                u[4 * a + 2, f, c] = (r[a, 0] + r[a, 2]) * 0.5 - r[a, 1] * 0.5
                u[4 * a + 3, f, c] = r[a, 2]


def _kernel_tiles_adjoint_loop(du, dg):
    """dg[f, c] += G^T dU[:, f, c] G for every kernel: the adjoint of ``_kernel_tiles_loop``."""
    fs, cs = dg.shape[:2]
    r = np.empty((4, 3), dtype=dg.dtype)
    for f in range(fs):
        for c in range(cs):
            for a in range(4):  # dU G: columns back
                q0, q1 = du[4 * a, f, c], du[4 * a + 1, f, c]
                q2, q3 = du[4 * a + 2, f, c], du[4 * a + 3, f, c]
                r[a, 0] = q0 + (q1 + q2) * 0.5
                r[a, 1] = (q1 - q2) * 0.5
                r[a, 2] = q3 + (q1 + q2) * 0.5
            k = dg[f, c]
            for b in range(3):  # G^T (dU G): rows back
                k[0, b] += r[0, b] + (r[1, b] + r[2, b]) * 0.5
                k[1, b] += (r[1, b] - r[2, b]) * 0.5
                k[2, b] += r[3, b] + (r[1, b] + r[2, b]) * 0.5


def _input_tiles_loop(xpad, th, tw, v):
    """V[:, c, p] = B^T d B for the 4x4 tile d at rows 2*ty.., columns 2*tx.. of xpad[c, n]
    (the input, zero-padded as the tiles read it), p = (n * th + ty) * tw + tx; v (16, C, P)."""
    cs, ns = xpad.shape[:2]
    for c in range(cs):
        for n in range(ns):
            for ty in range(th):
                x0, x1 = xpad[c, n, 2 * ty], xpad[c, n, 2 * ty + 1]
                x2, x3 = xpad[c, n, 2 * ty + 2], xpad[c, n, 2 * ty + 3]
                p0 = (n * th + ty) * tw
                for tx in range(tw):
                    j, p = 2 * tx, p0 + tx
                    for a in range(4):  # row a of B^T d, then its four columns times B
                        if a == 0:
                            e0, e1 = x0[j] - x2[j], x0[j + 1] - x2[j + 1]
                            e2, e3 = x0[j + 2] - x2[j + 2], x0[j + 3] - x2[j + 3]
                        elif a == 1:
                            e0, e1 = x1[j] + x2[j], x1[j + 1] + x2[j + 1]
                            e2, e3 = x1[j + 2] + x2[j + 2], x1[j + 3] + x2[j + 3]
                        elif a == 2:
                            e0, e1 = x2[j] - x1[j], x2[j + 1] - x1[j + 1]
                            e2, e3 = x2[j + 2] - x1[j + 2], x2[j + 3] - x1[j + 3]
                        else:
                            e0, e1 = x1[j] - x3[j], x1[j + 1] - x3[j + 1]
                            e2, e3 = x1[j + 2] - x3[j + 2], x1[j + 3] - x3[j + 3]
                        v[4 * a, c, p] = e0 - e2
                        v[4 * a + 1, c, p] = e1 + e2
                        v[4 * a + 2, c, p] = e2 - e1
                        v[4 * a + 3, c, p] = e1 - e3


def _output_tiles_loop(m, bias, th, tw, pool, y, argmax):
    """y[f, n] = A^T M A + bias[f] of each tile of M (16, F, P): with ``pool`` false, y (F, N,
    H', W') takes each tile's 2x2 block, cut to H' x W'; with ``pool`` true, y (F, N, H'', W'')
    takes the block's maximum (a 2x2 pool of stride 2: each tile is one window) and argmax its
    offset 2*a + b (the first on ties, as ``max_of_windows``); tiles past H'' x W'' (an odd
    H''s last row) are not computed."""
    fs, ns, ho, wo = y.shape
    rows, cols = (ho, wo) if pool else (th, tw)
    for f in range(fs):
        bf = bias[f]
        for n in range(ns):
            for ty in range(rows):
                p0 = (n * th + ty) * tw
                for tx in range(cols):
                    p, j = p0 + tx, 2 * tx
                    # the rows of A^T M, for columns 0..3
                    s0 = m[0, f, p] + m[4, f, p] + m[8, f, p]
                    s1 = m[1, f, p] + m[5, f, p] + m[9, f, p]
                    s2 = m[2, f, p] + m[6, f, p] + m[10, f, p]
                    s3 = m[3, f, p] + m[7, f, p] + m[11, f, p]
                    t0 = m[4, f, p] - m[8, f, p] - m[12, f, p]
                    t1 = m[5, f, p] - m[9, f, p] - m[13, f, p]
                    t2 = m[6, f, p] - m[10, f, p] - m[14, f, p]
                    t3 = m[7, f, p] - m[11, f, p] - m[15, f, p]
                    # times A: the 2x2 block
                    y00, y01 = s0 + s1 + s2 + bf, s1 - s2 - s3 + bf
                    y10, y11 = t0 + t1 + t2 + bf, t1 - t2 - t3 + bf
                    if pool:
                        best, k = y00, 0
                        if y01 > best:
                            best, k = y01, 1
                        if y10 > best:
                            best, k = y10, 2
                        if y11 > best:
                            best, k = y11, 3
                        y[f, n, ty, tx] = best
                        argmax[f, n, ty, tx] = k
                        continue
                    y[f, n, 2 * ty, j] = y00
                    if j + 1 < wo:
                        y[f, n, 2 * ty, j + 1] = y01
                    if 2 * ty + 1 < ho:
                        y[f, n, 2 * ty + 1, j] = y10
                        if j + 1 < wo:
                            y[f, n, 2 * ty + 1, j + 1] = y11


def _output_tiles_adjoint_loop(dy, th, tw, dm):
    """dM[:, f, p] = A dY A^T for the 2x2 block dY of dy[f, n] (F, N, H', W') at tile p (zero
    past the edge of dy): the adjoint of ``_output_tiles_loop``."""
    fs, ns, ho, wo = dy.shape
    zero = dy.dtype.type(0)
    for f in range(fs):
        for n in range(ns):
            for ty in range(th):
                p0 = (n * th + ty) * tw
                both = 2 * ty + 1 < ho
                y0 = dy[f, n, 2 * ty]
                y1 = dy[f, n, 2 * ty + 1] if both else y0
                for tx in range(tw):
                    p, j = p0 + tx, 2 * tx
                    inside = j + 1 < wo
                    g00 = y0[j]
                    g01 = y0[j + 1] if inside else zero
                    g10 = y1[j] if both else zero
                    g11 = y1[j + 1] if both and inside else zero
                    # A dY: the rows spread, (u, v) for columns 0 and 1
                    u0, u1, u2, u3 = g00, g00 + g10, g00 - g10, -g10
                    v0, v1, v2, v3 = g01, g01 + g11, g01 - g11, -g11
                    # (A dY) A^T: the columns spread
                    dm[0, f, p], dm[1, f, p], dm[2, f, p], dm[3, f, p] = u0, u0 + v0, u0 - v0, -v0
                    dm[4, f, p], dm[5, f, p], dm[6, f, p], dm[7, f, p] = u1, u1 + v1, u1 - v1, -v1
                    dm[8, f, p], dm[9, f, p], dm[10, f, p], dm[11, f, p] = u2, u2 + v2, u2 - v2, -v2
                    dm[12, f, p], dm[13, f, p] = u3, u3 + v3
                    dm[14, f, p], dm[15, f, p] = u3 - v3, -v3


def _output_tiles_max_adjoint_loop(dy, argmax, th, tw, dm):
    """dM[:, f, p] = A dY A^T where dY is zero but at tile p's argmax, which holds dy[f, n, ty,
    tx]: the adjoint of ``_output_tiles_loop`` with ``pool`` (tiles past dy's size get zeros)."""
    fs, ns, hp, wp = dy.shape
    zero = dy.dtype.type(0)
    for f in range(fs):
        for n in range(ns):
            for ty in range(th):
                p0 = (n * th + ty) * tw
                for tx in range(tw):
                    p = p0 + tx
                    g, k = zero, 0
                    if ty < hp and tx < wp:
                        g, k = dy[f, n, ty, tx], argmax[f, n, ty, tx]
                    # column a (rows) and column b (columns) of A, times g on the rows
                    if k < 2:
                        r0, r1, r2, r3 = g, g, g, zero
                    else:
                        r0, r1, r2, r3 = zero, g, -g, -g
                    if k % 2 == 0:
                        for i, r in enumerate((r0, r1, r2, r3)):
                            dm[4 * i, f, p], dm[4 * i + 1, f, p] = r, r
                            dm[4 * i + 2, f, p], dm[4 * i + 3, f, p] = r, zero
                    else:
                        for i, r in enumerate((r0, r1, r2, r3)):
                            dm[4 * i, f, p], dm[4 * i + 1, f, p] = zero, r
                            dm[4 * i + 2, f, p], dm[4 * i + 3, f, p] = -r, -r


def _input_tiles_adjoint_loop(dv, th, tw, dpad):
    """dpad[c, n] += B dV B^T of each tile of dV (16, C, P) at rows 2*ty.., columns 2*tx..:
    the adjoint of ``_input_tiles_loop`` (tiles 2 apart overlap, so each pixel sums up to four
    tiles); dpad (C, N, 2*th + 2, 2*tw + 2) starts zeroed."""
    cs, ns = dpad.shape[:2]
    for c in range(cs):
        for n in range(ns):
            for ty in range(th):
                p0 = (n * th + ty) * tw
                x0, x1 = dpad[c, n, 2 * ty], dpad[c, n, 2 * ty + 1]
                x2, x3 = dpad[c, n, 2 * ty + 2], dpad[c, n, 2 * ty + 3]
                for tx in range(tw):
                    p, j = p0 + tx, 2 * tx
                    for b in range(4):  # B dV: the rows back, column b of the tile
                        q0, q1 = dv[b, c, p], dv[4 + b, c, p]
                        q2, q3 = dv[8 + b, c, p], dv[12 + b, c, p]
                        e0, e1, e2, e3 = q0, q1 - q2 + q3, q1 + q2 - q0, -q3
                        if b == 0:
                            a0, a1, a2, a3 = e0, e1, e2, e3
                        elif b == 1:
                            b0, b1, b2, b3 = e0, e1, e2, e3
                        elif b == 2:
                            c0, c1, c2, c3 = e0, e1, e2, e3
                        else:
                            d0, d1, d2, d3 = e0, e1, e2, e3
                    # (B dV) B^T: the columns back, added into the four rows (unrolled: a loop
                    # over the rows through a 4x4 work array took 0.44 against 0.26 ms)
                    x0[j] += a0
                    x0[j + 1] += b0 - c0 + d0
                    x0[j + 2] += b0 + c0 - a0
                    x0[j + 3] -= d0
                    x1[j] += a1
                    x1[j + 1] += b1 - c1 + d1
                    x1[j + 2] += b1 + c1 - a1
                    x1[j + 3] -= d1
                    x2[j] += a2
                    x2[j + 1] += b2 - c2 + d2
                    x2[j + 2] += b2 + c2 - a2
                    x2[j + 3] -= d2
                    x3[j] += a3
                    x3[j + 1] += b3 - c3 + d3
                    x3[j + 2] += b3 + c3 - a3
                    x3[j + 3] -= d3


# -- the convolution ---------------------------------------------------------------------------


def fits(c: int, f: int, geometry: Windows) -> bool:
    """Whether a convolution of ``geometry`` from ``c`` to ``f`` channels is one this pays for
    when the batch is large enough: a 3x3 one at stride 1, undilated (``suits``), with at least
    16 channels in and out (few channels make GEMMs too thin to gain from fewer multiplies)."""
    return suits(geometry) and min(c, f) >= 16


def pays(c: int, f: int, n: int, geometry: Windows) -> bool:
    """Whether a convolution of ``geometry`` from ``c`` to ``f`` channels on ``n`` images runs
    faster this way: it ``fits``, and the compiled transforms can run on a transform of that many
    elements (``compiled.usable``: the NumPy backend, Numba, at least ``compiled.MIN_SIZE``)."""
    th, tw = tiles(geometry)
    return fits(c, f, geometry) and usable(_input_tiles_loop, (), 16 * c * n * th * tw)


def planes(scratch, name: str, rows: int, cols: int, dtype):
    """A (16, rows, cols) scratch array whose 16 planes lie a little more than a whole number
    of 4 KiB pages apart. The transforms read or write all 16 planes at once; planes exactly
    whole pages apart (as 32 x 1152 float32 are) share cache sets and evict each other: the
    input transform took 1.74 ms that way against 0.20 with the planes spread."""
    spacing = -(-rows * cols // 1024) * 1024 + 16
    return scratch.get(name, (16, spacing), dtype)[:, : rows * cols].reshape(16, rows, cols)


def forward(x, kernel, bias, geometry: Windows, scratch, pooled: bool = False):
    """y (F, N, H', W') of x (C, N, H, W); keeps V and U in ``scratch`` for ``backward``.

    ``pooled``: y is instead the maximum of each 2x2 block, (F, N, H' // 2, W' // 2), as a 2x2
    max pool of stride 2 gives it: each tile's output block is one pool window, so the output
    transform pools it at once (``_output_tiles_loop``), its argmax kept for ``backward``. Only
    the windows' tiles are computed (``tiles``).
    """
    xp = backend.xp
    c, n = x.shape[:2]
    f = len(kernel)
    th, tw = tiles(geometry, pooled)
    top, _, left, _ = geometry.pad
    # the input with the convolution's padding and the last tiles' overhang as zeros
    xpad = scratch.padded("winograd x", x, _padded_shape(c, n, th, tw, geometry), top, left)
    v = planes(scratch, "winograd V", c, n * th * tw, x.dtype)
    compiled(_input_tiles_loop)(xpad, th, tw, v)
    u = scratch.get("winograd U", (16, f, c), x.dtype)
    compiled(_kernel_tiles_loop)(kernel, u)
    m = planes(scratch, "winograd M", f, n * th * tw, x.dtype)
    xp.matmul(u, v, out=m)
    b = bias if bias is not None else scratch.get("zero bias", (f,), x.dtype, fill=0)
    ho, wo = geometry.out_hw
    y = xp.empty((f, n, ho // 2, wo // 2) if pooled else (f, n, ho, wo), dtype=x.dtype)
    argmax = scratch.get("winograd argmax", y.shape if pooled else (1, 1, 1, 1), np.int8)
    compiled(_output_tiles_loop)(m, b, th, tw, pooled, y, argmax)
    return y


def backward(dy, dkernel, dbias, geometry: Windows, scratch, input_grad: bool, pooled=False):
    """From dy (C-contiguous; (F, N, H', W'), or the pooled shape if ``forward`` pooled):
    dkernel += dg, dbias += the sum of dy (unless None); returns dx (C, N, H, W) when
    ``input_grad``, else None."""
    xp = backend.xp
    f, n = dy.shape[:2]
    th, tw = tiles(geometry, pooled)
    c = scratch["winograd U"].shape[2]
    v, u = planes(scratch, "winograd V", c, n * th * tw, dy.dtype), scratch["winograd U"]
    dm = planes(scratch, "winograd M", f, n * th * tw, dy.dtype)  # M is used up
    if pooled:  # each window's gradient goes to its argmax
        compiled(_output_tiles_max_adjoint_loop)(dy, scratch["winograd argmax"], th, tw, dm)
    else:
        compiled(_output_tiles_adjoint_loop)(dy, th, tw, dm)
    du = xp.matmul(dm, v.transpose(0, 2, 1), out=scratch.get("winograd dU", u.shape, u.dtype))
    compiled(_kernel_tiles_adjoint_loop)(du, dkernel)
    if dbias is not None:
        flat = dy.reshape(f, -1)
        dbias += flat @ scratch.get("ones", (flat.shape[1],), dy.dtype, fill=1)
    if not input_grad:
        return None
    dv = xp.matmul(u.transpose(0, 2, 1), dm, out=v)  # V is used up
    dpad = scratch.get("winograd dx", scratch["winograd x"].shape, dy.dtype)
    dpad[...] = 0
    compiled(_input_tiles_adjoint_loop)(dv, th, tw, dpad)
    top, _, left, _ = geometry.pad
    h, w = geometry.in_hw
    return xp.ascontiguousarray(dpad[:, :, top : top + h, left : left + w])
