"""NumPy's own elementwise loops (its SIMD tanh), callable from compiled code without the GIL.

NumPy (1.24 and later) hands out the C function a ufunc runs over a strided run of elements:
``ufunc._resolve_dtypes_and_context`` and ``ufunc._get_strided_loop`` fill a capsule, named
for its layout version, with the function, its context and its auxiliary data (NumPy documents
this as experimental API, the function's signature as stable). A compiled loop that calls the
function computes exactly what the ufunc computes, bit for bit, with NumPy's vectorized code:
Numba's own ``np.tanh`` is a scalar libm call per element, several times slower. Where the
capsule is missing or has another layout, ``strided_loop`` returns None and callers keep
calling the ufunc from Python.

The function's C signature is ``int loop(context, char **data, npy_intp *dimensions,
npy_intp *strides, auxdata)``: data holds the input's and the output's addresses, dimensions
the element count, strides their byte strides; it returns 0, or -1 on an error (a unary
floating-point loop raises none).
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import numpy as np

CAPSULE = b"numpy_1.24_ufunc_call_info"


class StridedLoop(NamedTuple):
    """A unary ufunc's loop for contiguous runs of one dtype, as ``_unary_loop`` calls it."""

    function: object  # ctypes: (context, data, dimensions, strides, auxdata) -> int
    context: int
    auxdata: int
    capsule: object  # the capsule that owns the context and auxdata (kept alive here)


_loops: dict = {}


def strided_loop(ufunc, dtype) -> StridedLoop | None:
    """NumPy's loop for ``ufunc`` (one input, one output) on contiguous arrays of ``dtype``,
    made once; None where NumPy does not hand it out in the layout this reads."""
    dtype = np.dtype(dtype)
    key = (ufunc, dtype)
    if key not in _loops:
        _loops[key] = _found(ufunc, dtype)
    return _loops[key]


def _found(ufunc, dtype) -> StridedLoop | None:
    try:
        resolved, capsule = ufunc._resolve_dtypes_and_context((dtype, dtype))
        if resolved != (dtype, dtype):
            return None
        ufunc._get_strided_loop(capsule, fixed_strides=(dtype.itemsize, dtype.itemsize))
    except (AttributeError, TypeError, ValueError):
        return None
    # (prototypes of our own: ctypes.pythonapi's functions are shared with other code)
    api = ctypes.pythonapi
    name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", api))
    if name(capsule) != CAPSULE:
        return None
    pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", api)
    )
    info = ctypes.cast(pointer(capsule, CAPSULE), ctypes.POINTER(_CallInfo))[0]
    if not info.strided_loop or info.requires_pyapi:
        return None
    i = ctypes.c_int64
    function = ctypes.CFUNCTYPE(ctypes.c_int, i, i, i, i, i)(info.strided_loop)
    return StridedLoop(function, info.context or 0, info.auxdata or 0, capsule)


class _CallInfo(ctypes.Structure):
    """NumPy's ``ufunc_call_info`` (the capsule ``CAPSULE``)."""

    _fields_ = [
        ("strided_loop", ctypes.c_void_p),
        ("context", ctypes.c_void_p),
        ("auxdata", ctypes.c_void_p),
        ("requires_pyapi", ctypes.c_bool),
        ("no_floatingpoint_errors", ctypes.c_bool),
    ]


def _unary_loop(function, context, auxdata, src, dst, work):
    """dst = the ufunc of src through its ``StridedLoop`` (compiled code calls this): src and
    dst C-contiguous of one size and dtype; work an int64 array of at least 5 (the loop's data,
    dimensions and strides arguments)."""
    work[0], work[1], work[2] = src.ctypes.data, dst.ctypes.data, src.size
    work[3] = work[4] = src.itemsize
    at = work.ctypes.data
    return function(context, at, at + 16, at + 24, auxdata)
