"""SGD (with momentum, Nesterov's or not) and RMSprop: the plain NumPy passes, and the same
arithmetic fused into one compiled pass each (as ``kernels.adam`` does for Adam).

    SGD        w -= lr g                              (no momentum)
               v = momentum v - lr g;  w += v         (Nesterov: w += momentum v - lr g)
    RMSprop    v = rho v + (1 - rho) g^2;  w -= lr g / sqrt(v + eps)

The loops do the references' operations in the same order and precision (every scalar in the
arrays' dtype, as NumPy casts a Python float against an array), so their results are the
references' bits. A fused pass lets a second core take half of the update
(``kernels.second_core``); RMSprop's centered and momentum variants keep their NumPy passes.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels import second_core
from bptrain.nn.kernels.compiled import compiled, flat, usable
from bptrain.nn.kernels.partner import RMSPROP, SGD


def sgd_reference(w, g, v, lr, momentum, nesterov) -> None:
    """SGD's update in place (``v``, the velocity, is unused without momentum)."""
    if not momentum:
        w -= lr * g
        return
    v *= momentum
    v -= lr * g
    if nesterov:
        w += momentum * v - lr * g
    else:
        w += v


def _sgd_loop(w, g, v, lr, momentum, nesterov):
    for i in range(w.size):
        step = lr * g[i]
        if momentum == 0:
            w[i] -= step
        else:
            vi = v[i] * momentum - step
            v[i] = vi
            if nesterov:
                w[i] += momentum * vi - step
            else:
                w[i] += vi


def rmsprop_reference(w, g, v, lr, rho, eps) -> None:
    """RMSprop's update in place (not centered, without momentum)."""
    v *= rho
    v += (1 - rho) * g * g
    w -= lr * g / backend.xp.sqrt(v + eps)


def _rmsprop_loop(w, g, v, lr, rho, c, eps):
    """(c = 1 - rho)"""
    for i in range(w.size):
        gi = g[i]
        vi = v[i] * rho + (c * gi) * gi
        v[i] = vi
        w[i] -= lr * gi / np.sqrt(vi + eps)


_EMPTY: dict = {}  # {dtype: a kept empty array}: the velocity SGD without momentum lacks


def no_slot(dtype):
    """An empty array of ``dtype``, the same one every time (for SGD without momentum)."""
    return _EMPTY.setdefault(dtype, backend.xp.zeros(0, dtype=dtype))


def sgd_update(w, g, v, lr, momentum, nesterov) -> None:
    """One SGD update in place: the fused pass where it can run, else the reference. ``v``:
    the velocity, or ``no_slot(w.dtype)`` without momentum."""
    if not usable(_sgd_loop, (w, g, v), w.size):
        return sgd_reference(w, g, v, lr, momentum, nesterov)
    s = w.dtype.type
    scalars = (s(lr), s(momentum), s(1.0 if nesterov else 0.0))
    second_core.update(SGD, compiled(_sgd_loop), flat((w, g, v)), scalars)  # (on two cores?)
    return None


def rmsprop_update(w, g, v, lr, rho, eps) -> None:
    """One RMSprop update in place: the fused pass where it can run, else the reference."""
    if not usable(_rmsprop_loop, (w, g, v), w.size):
        return rmsprop_reference(w, g, v, lr, rho, eps)
    s = w.dtype.type
    scalars = (s(lr), s(rho), s(1 - rho), s(eps))
    second_core.update(RMSPROP, compiled(_rmsprop_loop), flat((w, g, v)), scalars)
    return None
