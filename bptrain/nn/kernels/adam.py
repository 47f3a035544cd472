"""Adam's update: the plain NumPy passes, and the same arithmetic fused into one compiled pass.

For every element (Keras' form, the bias correction folded into the rate ``lr_t``):

    m = b1 m + (1 - b1) g
    v = b2 v + (1 - b2) g^2
    w -= lr_t m / (sqrt(v) + eps)

``adam_reference`` is twelve NumPy calls, each a pass over the flat buffers (one temporary).
``adam_fused`` is one loop compiled by Numba that reads g, m, v, w once and writes m, v, w once,
with the same operations in the same order in the same precision (no fast-math: no fused
multiply-adds, no reordering), so its results are bit for bit the reference's. On the MNIST MLP's
101,770 parameters (float32) it took 61 against 167 us a step (measured alternating in one
process on the loaded 2-core machine); the twelve passes are about a third of the MLP's step.
Neither cache-sized blocks (twelve calls per block: 142-310 us for blocks of 64K-4K elements)
nor numexpr (one call per moment and one for w: 646 us; its interpreter is slower than NumPy's
loops here) nor the passes split over two threads (180 us: the second core was no help) paid.

``adam_update`` takes the fused pass where ``compiled.usable``: the NumPy backend, Numba
installed, contiguous arrays and an update of at least ``compiled.MIN_SIZE`` elements (Numba's
0.8 s import, at ~1 ns saved per element and step, pays back within a few thousand steps of a
model this size, never for one of a few thousand parameters, which therefore never imports it);
otherwise the reference.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels import second_core
from bptrain.nn.kernels.compiled import compiled, flat, usable
from bptrain.nn.kernels.partner import ADAM


def adam_reference(w, g, m, v, lr_t, b1, b2, eps, tmp) -> None:
    """The update in NumPy passes, in place: w, g, m, v and the work array tmp of one shape."""
    xp = backend.xp
    xp.multiply(g, 1 - b1, out=tmp)
    m *= b1
    m += tmp
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v *= b2
    v += tmp
    xp.sqrt(v, out=tmp)
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= lr_t
    w -= tmp


def _adam_loop(w, g, m, v, lr_t, b1, c1, b2, c2, eps):
    """The reference's operations on each element in turn (c1 = 1 - b1, c2 = 1 - b2; every
    scalar in the arrays' dtype, as NumPy casts a Python float against an array)."""
    for i in range(w.size):
        gi = g[i]
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        w[i] -= mi / (np.sqrt(vi) + eps) * lr_t


def adam_fused(w, g, m, v, lr_t, b1, b2, eps) -> None:
    """``adam_reference`` in one compiled pass, bit for bit (see the module docstring); flat
    contiguous NumPy arrays of one dtype (``compiled.usable``)."""
    s = w.dtype.type
    scalars = (s(lr_t), s(b1), s(1 - b1), s(b2), s(1 - b2), s(eps))
    second_core.update(ADAM, compiled(_adam_loop), (w, g, m, v), scalars)  # (on two cores?)


def adam_update(w, g, m, v, lr_t, b1, b2, eps, scratch) -> None:
    """One Adam update in place: fused where it can run, else the reference (its work array
    from ``scratch``, one per shape)."""
    if usable(_adam_loop, (w, g, m, v), w.size):
        adam_fused(*flat((w, g, m, v)), lr_t, b1, b2, eps)
    else:
        tmp = scratch.get(f"tmp{w.shape}", w.shape, w.dtype)
        adam_reference(w, g, m, v, lr_t, b1, b2, eps, tmp)
