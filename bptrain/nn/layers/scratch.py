"""Scratch arrays a layer keeps from call to call."""

from __future__ import annotations

from bptrain.nn import backend


class Scratch:
    """Named work arrays (im2col columns, pooling windows, masks) reused between calls.

    A training step that allocates its large temporaries afresh pays for the memory again each
    time (the allocator returns big blocks to the system, and the next step faults them back in
    page by page); reusing them removes that cost. An array is remade only when the requested
    shape or dtype changes, e.g. for the smaller last batch of an epoch or after ``cast``.
    Never hand one of these arrays to a caller: the next call overwrites it.
    """

    def __init__(self):
        self._arrays: dict = {}

    def get(self, name: str, shape: tuple, dtype, fill=None):
        """The array called ``name``; a new one is filled with ``fill`` (if given) once."""
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            xp = backend.xp
            a = xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype=dtype)
            self._arrays[name] = a
        return a

    def __getitem__(self, name: str):
        """The array called ``name``, as the last ``get`` left it."""
        return self._arrays[name]
