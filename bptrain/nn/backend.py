"""The array module behind the core.

Layers create arrays only through ``backend.xp`` (NumPy by default), so a CuPy backend can be
swapped in without touching them. The few calls whose behaviour differs between NumPy and CuPy
live here too.
"""

from __future__ import annotations

import numpy

xp = numpy
name = "numpy"


def use(backend: str) -> None:
    """Select the array module: ``"numpy"`` or ``"cupy"``."""
    global xp, name
    if backend == "numpy":
        xp, name = numpy, "numpy"
    elif backend == "cupy":
        import cupy  # optional extra: pip install bptrain[gpu]

        xp, name = cupy, "cupy"
    else:
        raise ValueError(f"unknown backend {backend!r}; expected 'numpy' or 'cupy'")


def to_numpy(a):
    """Return ``a`` as a NumPy array (copying from the device when the backend is CuPy)."""
    if isinstance(a, numpy.ndarray):
        return a
    if hasattr(a, "get"):
        return a.get()
    return numpy.asarray(a)


def asarray(a, dtype=None):
    """Move ``a`` to the current backend (no copy when it is already there)."""
    return xp.asarray(a, dtype=dtype)


def scatter_add(target, index, values) -> None:
    """``target[index] += values`` with repeated indexes accumulated (np.add.at / cupyx)."""
    if name == "cupy":
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        numpy.add.at(target, index, values)
