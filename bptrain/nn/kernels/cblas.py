"""NumPy's own BLAS GEMM, callable from compiled code without the GIL (``kernels.partner``).

NumPy's wheels carry OpenBLAS built with 64-bit integers (symbols ``scipy_cblas_sgemm64_``,
``scipy_cblas_dgemm64_``). ``gemms`` finds them through threadpoolctl (``blas_threads``),
which knows the loaded library's file, and returns them as ctypes functions whose pointer
arguments are declared as 64-bit integers (the x86-64 calling convention passes both alike),
so a Numba loop can pass array addresses it reads from a mailbox.
"""

from __future__ import annotations

import ctypes

from bptrain.nn.kernels import blas_threads

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_NAMES = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")


def gemms() -> tuple | None:
    """(sgemm, dgemm) of NumPy's OpenBLAS as ctypes functions, or None where NumPy uses
    another BLAS (or one with 32-bit integers) or threadpoolctl cannot find it. (A process may
    hold other OpenBLAS copies, PyTorch's or SciPy's: NumPy's comes with NumPy.)"""
    for controller in blas_threads.openblas_controllers():
        try:
            lib = ctypes.CDLL(controller.filepath)
        except OSError:
            continue
        for name in _NAMES:
            s, d = (getattr(lib, name.format(t), None) for t in "sd")
            if s is not None and d is not None:
                return _declared(s, ctypes.c_float), _declared(d, ctypes.c_double)
    return None


def _declared(fn, scalar):
    """``fn(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``."""
    i = ctypes.c_int64
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i, i, i, scalar, i, i, i, i]
    fn.argtypes += [scalar, i, i]
    fn.restype = None
    return fn
