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
        self._views: dict = {}

    def get(self, name: str, shape: tuple, dtype, fill=None):
        """The array called ``name``; a new one is filled with ``fill`` (if given) once."""
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            xp = backend.xp
            a = xp.empty(shape, dtype=dtype) if fill is None else xp.full(shape, fill, dtype=dtype)
            self._arrays[name] = a
        return a

    def padded(self, name: str, x, shape: tuple, top: int, left: int):
        """``x`` (..., H, W) copied into the array called ``name`` of ``shape`` at row ``top``
        and column ``left``; the border (padding zeros) is filled once, when the array is
        made, and never written."""
        a = self.get(name, shape, x.dtype, fill=0)
        h, w = x.shape[-2:]
        a[..., top : top + h, left : left + w] = x
        return a

    def views(self, name: str, make, *arrays):
        """``make(*arrays)``, e.g. a time loop's per-step views of its buffers, made again only
        when one of ``arrays`` is a different array than last time. (Slicing costs about 0.2 us
        a view; a step of LSTM's loop takes ten of them.) The entry holds on to ``arrays``, so
        their ids cannot be reused by new arrays while it exists."""
        key = tuple(map(id, arrays))
        entry = self._views.get(name)
        if entry is None or entry[0] != key:
            entry = (key, arrays, make(*arrays))
            self._views[name] = entry
        return entry[2]

    def __getitem__(self, name: str):
        """The array called ``name``, as the last ``get`` left it."""
        return self._arrays[name]
