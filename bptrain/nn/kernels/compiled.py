"""Loops compiled by Numba, for the fused kernels (``kernels.adam``, ``kernels.lstm_fused``).

A fused kernel is a plain Python loop over array elements doing a reference kernel's NumPy
operations in the same order and precision; Numba compiles it (no fast-math: no fused
multiply-adds, no reordering), so the compiled loop returns the reference's bits in one pass
instead of several. Numba is imported on first use (0.8 s once per process; the compiled code
is cached on disk by Numba); without it, or on another backend than NumPy, callers keep their
reference. ``MIN_SIZE`` is the number of elements below which a kernel is not worth the import.
"""

from __future__ import annotations

from bptrain.nn import backend

MIN_SIZE = 1 << 16
_compiled: dict = {}


def compiled(loop, reassociate: bool = False):
    """``loop`` compiled by Numba (once), or None where Numba is missing.

    ``reassociate``: the compiler may reorder the loop's sums (fast-math's "reassoc" flag
    alone), so a dot product runs in vector lanes; the result then differs from the plain
    order by round-off, and stays the same from run to run on one machine."""
    key = (loop, reassociate)
    if key not in _compiled:
        try:
            import numba
        except ImportError:
            _compiled[key] = None
        else:
            # error_model="numpy": division by zero gives inf, as in NumPy, and loops with a
            # division vectorize (Python's error model checks every division). nogil: a loop
            # runs beside other threads, as NumPy's calls do (``kernels.blas_threads``).
            fastmath = {"reassoc"} if reassociate else False
            _compiled[key] = numba.njit(
                loop, error_model="numpy", cache=True, nogil=True, fastmath=fastmath
            )
    return _compiled[key]


def usable(loop, arrays, size: int) -> bool:
    """Whether the compiled ``loop`` can run on ``arrays`` and pays: the NumPy backend, every
    array C-contiguous, ``size`` (the elements the work touches) at least ``MIN_SIZE``, Numba."""
    if backend.name != "numpy" or size < MIN_SIZE:
        return False
    for a in arrays:  # (a loop: a step calls this, and a generator costs a microsecond)
        if not a.flags.c_contiguous:
            return False
    return compiled(loop) is not None


def flat(arrays) -> tuple:
    """1-D views of C-contiguous ``arrays`` for a fused loop, each array that is 1-D already
    passed as itself (the partner thread binds an update's buffers by identity)."""
    return tuple(a if a.ndim == 1 else a.reshape(-1) for a in arrays)


_prefetcher: list = []


def prefetcher():
    """``prefetch(array, i)`` for compiled loops (made once; None without Numba): a hint to the
    CPU (LLVM's ``llvm.prefetch``, a read into every cache level: x86's PREFETCHT0) that element
    i of the 1-D ``array`` will be read soon, so that its cache line comes from memory while the
    loop works on others. It changes no value; a loop that calls it runs compiled only."""
    if not _prefetcher:
        try:
            from llvmlite import ir
            from numba import types
            from numba.core import cgutils
            from numba.extending import intrinsic
        except ImportError:
            _prefetcher.append(None)
            return None

        @intrinsic
        def prefetch(typingctx, array, i):
            def codegen(context, builder, signature, args):
                data = context.make_array(signature.args[0])(context, builder, args[0]).data
                byte = ir.IntType(8).as_pointer()
                i32 = ir.IntType(32)
                hint = ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32])
                fn = cgutils.get_or_insert_function(builder.module, hint, "llvm.prefetch.p0i8")
                where = builder.bitcast(builder.gep(data, [args[1]]), byte)
                read, all_levels, data_cache = (ir.Constant(i32, v) for v in (0, 3, 1))
                builder.call(fn, [where, read, all_levels, data_cache])
                return context.get_dummy_value()

            return types.void(array, i), codegen

        _prefetcher.append(prefetch)
    return _prefetcher[0]
