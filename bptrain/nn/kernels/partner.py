"""A thread on the second core that takes GEMMs and Adam's update off the training thread.

Why not a Python thread pool: handing work to a sleeping thread and waiting for it took 43 us
a round trip on the 2-core dev machine (the sleeping core must be woken), as long as the GEMMs
of the MNIST MLP's step take to split. Why not OpenBLAS' own threads: they split every GEMM
over both cores, so both cores read the weights, and Adam's writes to them then wait for the
other core's copies to be invalidated (Adam 95 us instead of 32); and spinning OpenBLAS threads
stall a run when another process holds a core (see ``train.threads``).

So the partner thread runs one compiled loop (``_serve_loop``, Numba, without the GIL) that
polls a mailbox (an int64 array in cache lines of its own): the training thread writes an
operation's arguments, then bumps ``SEQ``; the partner runs it (a GEMM through NumPy's own
OpenBLAS, ``kernels.cblas``, an optimizer's loop over index ranges of the bound flat buffers, or
the sum of squares of the bound gradient's ranges) and sets ``DONE`` to that number: 1.5 us a
round trip. The training thread posts through compiled functions too (``_post_gemm_loop``,
``_post_ranges_loop``), which read the operands' addresses themselves: written from Python, a
GEMM's post took 4-7 us (each ``ndarray.ctypes.data`` alone ~1 us), posted so ~0.5.

The partner waits with the x86 PAUSE instruction, which also keeps the compiler from caching
mailbox reads or moving the results' writes after ``DONE`` (the x86-64 memory model keeps stores
in order; other CPUs are not offered, see ``available``), and calls ``sched_yield`` every
``YIELD_EVERY`` polls, so that other work may have the core. After ~12 ms without work it parks
on a condition variable, and the next post wakes it (the slow path, ~0.5 ms, after a pause such
as validation).
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
import time

import numpy as np

from bptrain.nn.kernels import cblas
from bptrain.nn.kernels.compiled import compiled

# Mailbox slots: the training thread writes SEQ, OP and the arguments (from ARGS), the partner
# DONE and PARKED, which lie in a cache line of their own (``_own_lines``).
SEQ, OP, ARGS, DONE, PARKED, SLOTS = 0, 1, 2, 24, 25, 32
SGEMM, DGEMM, BIND, STOP, ADAM, SGD, RMSPROP, SQUARES = 1, 2, 3, 4, 5, 6, 7, 8
MAX_RANGES = 8  # index ranges of one optimizer update
POLLS = 200_000  # polls (a PAUSE each, ~50 ns on AMD Zen) before the partner parks
YIELD_EVERY = 64  # polls between calls to sched_yield
_serve_cache: list = []


def available() -> bool:
    """Whether a partner can run here: Linux on x86-64, NumPy's ILP64 OpenBLAS, Numba."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    return _serve() is not None


def _serve():
    """(the partner's compiled loop, sgemm, dgemm, sched_yield), made once (None where it
    cannot be); the compiled functions that post, update and sum are made with it."""
    if not _serve_cache:
        from bptrain.nn.kernels import adam, sgd_rmsprop  # (which import this module's users)

        blas = cblas.gemms()
        loops = [compiled(f) for f in (adam._adam_loop, sgd_rmsprop._sgd_loop)]
        loops.append(compiled(sgd_rmsprop._rmsprop_loop))
        if blas is None or None in loops:
            _serve_cache.append(None)
        else:
            global _relax_pause, _adam_ranges, _sgd_ranges, _rmsprop_ranges, _updated, _squares
            global _posted, _post_gemm, _post_ranges
            _relax_pause = _relax()
            _adam_ranges, _sgd_ranges, _rmsprop_ranges = loops
            _squares = compiled(_squares_loop, reassociate=True)
            _updated, _posted = compiled(_updated_loop), compiled(_posted_loop)
            _post_gemm, _post_ranges = compiled(_post_gemm_loop), compiled(_post_ranges_loop)
            libc = ctypes.CDLL(None)
            yield_core = libc.sched_yield
            yield_core.argtypes, yield_core.restype = [], ctypes.c_int
            _serve_cache.append((compiled(_serve_loop), *blas, yield_core))
    return _serve_cache[0]


def _relax():
    """A compiled ``relax()``: the x86 PAUSE instruction (a spinning thread's hint to the CPU,
    which then lends the core's resources to a hyperthread sibling, if any) that also keeps
    the compiler from moving memory reads or writes across it."""
    from llvmlite import binding, ir
    from numba import types
    from numba.extending import intrinsic

    binding.initialize_native_asmparser()  # (Numba does not: it emits no assembly text)

    @intrinsic
    def relax(typingctx):
        def codegen(context, builder, signature, args):
            pause = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "pause", "~{memory}", True)
            builder.call(pause, [])
            return context.get_dummy_value()

        return types.void(), codegen

    return relax


# Set by ``_serve``, before the functions that call them are compiled: PAUSE, the updates'
# loops, and the ``_*_loop`` functions below compiled (the partner and the training thread call
# ``_updated`` and ``_squares``; the training thread posts with ``_post_gemm`` and
# ``_post_ranges``).
_relax_pause = _adam_ranges = _sgd_ranges = _rmsprop_ranges = _updated = _squares = None
_posted = _post_gemm = _post_ranges = None


def _updated_loop(op, w, g, a, b, s, ranges):
    """An optimizer's update (``op``: ADAM, SGD or RMSPROP) of the flat buffers w, g, a, b
    (unused slots: empty arrays) over the index ranges ``ranges`` ([count, lo, hi, lo, hi,
    ...]) with the scalars ``s`` (as its loop takes them): what each core runs of an update."""
    for r in range(ranges[0]):
        i = slice(ranges[1 + 2 * r], ranges[2 + 2 * r])
        if op == ADAM:
            _adam_ranges(w[i], g[i], a[i], b[i], s[0], s[1], s[2], s[3], s[4], s[5])
        elif op == SGD:
            _sgd_ranges(w[i], g[i], a[i], s[0], s[1], s[2])
        elif op == RMSPROP:
            _rmsprop_ranges(w[i], g[i], a[i], s[0], s[1], s[2], s[3])


def _squares_loop(g, ranges):
    """The sum of squares of g over the index ranges ``ranges`` (as ``_updated_loop`` takes
    them), summed in g's dtype as BLAS' dot does, reassociated (in vector lanes: the order is
    round-off only, and a divergence check asks only whether the sum is finite). Each range is
    a slice first: indexes computed from ``ranges`` might be negative for all Numba knows, and
    their wraparound check kept the loop from vectorizing (25 against 2 us per 51K float32)."""
    total = np.float32(0)  # (float64 where g is)
    for r in range(ranges[0]):
        part = g[ranges[1 + 2 * r] : ranges[2 + 2 * r]]
        for i in range(part.size):
            total += part[i] * part[i]
    return total


def _posted_loop(box, op):
    """Post operation ``op``, its arguments written: SEQ + 1 after them (PAUSE keeps the
    compiler from moving the writes; x86-64 keeps stores in order). Returns PARKED (whether the
    partner must be woken)."""
    box[OP] = op
    _relax_pause()
    box[SEQ] += 1
    return box[PARKED]


def _post_gemm_loop(box, op, transa, transb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc):
    """Post GEMM ``op`` (SGEMM or DGEMM) ``c = a @ b`` in CBLAS' row-major arguments, each
    operand an array and the byte offset of the operand within it."""
    x = box[ARGS:]
    x[0], x[1], x[2], x[3], x[4] = transa, transb, m, n, k
    x[5], x[6] = a.ctypes.data + a_at, lda
    x[7], x[8] = b.ctypes.data + b_at, ldb
    x[9], x[10] = c.ctypes.data + c_at, ldc
    return _posted(box, op)


def _post_ranges_loop(box, op, ranges):
    """Post ``op`` over the bound buffers' index ranges ``ranges`` (an update, or SQUARES)."""
    for i in range(len(ranges)):
        box[ARGS + i] = ranges[i]
    return _posted(box, op)


def _serve_loop(box, w, g, a, b, scalars, result, last, polls, sgemm, dgemm, yield_core):
    """Run posted operations until BIND or STOP arrives (returns (its number, 1)) or ``polls``
    polls find none (returns (last, 0)). The C functions come as arguments, so that Numba can
    cache the compiled loop on disk (compiled in, their addresses would tie it to a process)."""
    left = polls
    while True:
        if box[SEQ] == last:
            left -= 1
            if left == 0:
                return last, 0
            _relax_pause()
            if left % YIELD_EVERY == 0:
                yield_core()  # (another thread that wants this core gets it)
            continue
        last, left = box[SEQ], polls
        _relax_pause()  # (the arguments are read after SEQ)
        op, x = box[OP], box[ARGS:]
        if op == BIND or op == STOP:
            return last, 1
        if op == SGEMM:
            sgemm(cblas.ROW_MAJOR, x[0], x[1], x[2], x[3], x[4], np.float32(1), x[5], x[6],
                  x[7], x[8], np.float32(0), x[9], x[10])  # fmt: skip
        elif op == DGEMM:
            dgemm(cblas.ROW_MAJOR, x[0], x[1], x[2], x[3], x[4], 1.0, x[5], x[6],
                  x[7], x[8], 0.0, x[9], x[10])  # fmt: skip
        elif op == SQUARES:  # of the bound gradient's ranges
            result[0] = _squares(g, x)
        else:  # an optimizer's update over index ranges of the bound buffers w, g, a, b
            _updated(op, w, g, a, b, scalars, x)
        _relax_pause()  # (the results are written before DONE)
        box[DONE] = last


def _own_lines(n: int, dtype):
    """A zeroed array of n items in cache lines (64 bytes) that hold nothing else: the
    partner polls the mailbox all the time, and a line it shared with an array the training
    thread writes would go back and forth between the cores on every write."""
    nbytes = n * np.dtype(dtype).itemsize
    raw = np.zeros(nbytes + 192, dtype=np.uint8)
    start = 64 + (-raw.ctypes.data) % 64
    return raw[start : start + nbytes].view(dtype)


class Partner:
    """The partner thread and its mailbox. ``gemm``, ``update`` and ``squares`` post an
    operation, ``wait`` waits for it; one operation at a time, posted by one (the training)
    thread."""

    def __init__(self, dtype, core: int):
        self.core = core
        self.box = _own_lines(SLOTS, np.int64)
        self.dtype = np.dtype(dtype)
        self.scalars = _own_lines(6, self.dtype)  # an update's, as its loop takes them
        self.result = _own_lines(1, np.float64)  # a sum of squares
        self.empty = np.zeros(0, dtype=self.dtype)
        self.bound = (self.empty,) * 4  # an optimizer's flat buffers w, g and up to two slots
        self._gemm_op = SGEMM if self.dtype == np.float32 else DGEMM
        self._wake = threading.Condition()
        self._serve, *self._functions = _serve()
        first = (self.box, *self.bound, self.scalars, self.result, 0, 1, *self._functions)
        self._serve(*first)  # (compiled now)
        self._thread = threading.Thread(target=self._run, name="bptrain-partner", daemon=True)
        self._thread.start()

    def gemm(self, transa, transb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc) -> None:
        """Post ``c = a @ b`` in the partner's dtype from CBLAS' row-major arguments (flags,
        sizes, leading dimensions), each operand given as an array and the byte offset at
        which the operand starts in it (``a_at``, ``b_at``, ``c_at``)."""
        args = (transa, transb, m, n, k, a, a_at, lda, b, b_at, ldb, c, c_at, ldc)
        if _post_gemm(self.box, self._gemm_op, *args):
            self._notify()

    def update(self, op: int, arrays: tuple, scalars: tuple, ranges) -> None:
        """Post an optimizer's update (``op``: ADAM, SGD or RMSPROP) of its flat buffers
        ``arrays`` (w, g and up to two slots) over the index ranges in ``ranges`` (an int64
        array [count, lo, hi, lo, hi, ...]) with ``scalars`` (as its loop takes them, which
        ``self.scalars`` then holds)."""
        self.bind(arrays)
        self.scalars[: len(scalars)] = scalars
        if _post_ranges(self.box, op, ranges):
            self._notify()

    def update_here(self, op: int, arrays: tuple, ranges) -> None:
        """This thread's share of the update just posted: the same loops over ``ranges``."""
        a, b = (*arrays[2:], self.empty, self.empty)[:2]
        _updated(op, arrays[0], arrays[1], a, b, self.scalars, ranges)

    def bind(self, arrays: tuple) -> None:
        """Bind an optimizer's flat buffers (w, g and up to two slots), unless they are."""
        for x, y in zip(arrays, self.bound, strict=False):  # (loops use only those given)
            if x is not y:
                break
        else:
            return
        self.bound = (*arrays, *(self.empty,) * (4 - len(arrays)))  # (unused slots: empty)
        self.post(BIND, [])
        self.wait()

    def squares(self, g, ranges) -> bool:
        """Post the sum of squares of the bound gradient's ``ranges`` into ``result[0]``, if
        ``g`` is the bound gradient; returns whether it did."""
        if g is not self.bound[1]:
            return False
        if _post_ranges(self.box, SQUARES, ranges):
            self._notify()
        return True

    def squares_here(self, g, ranges) -> float:
        """The sum of squares of g over ``ranges``, on this thread (the same loop)."""
        return _squares(g, ranges)

    def wait(self) -> None:
        """Until the partner has done the last operation posted."""
        box, seq, polls = self.box, self.box[SEQ], 0
        while box[DONE] != seq:
            polls += 1
            if polls % 1024 == 0:
                if box[PARKED]:
                    self._notify()
                if not self._thread.is_alive():
                    raise RuntimeError("the second core's thread has stopped")
                time.sleep(0)  # (lets the partner take the GIL when it parks or binds)

    def stop(self) -> None:
        self.post(STOP, [])
        self.wait()
        self._thread.join()

    def post(self, op: int, args: list) -> None:
        box = self.box
        box[ARGS : ARGS + len(args)] = args
        box[OP] = op
        box[SEQ] += 1
        if box[PARKED]:
            self._notify()

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def _run(self) -> None:
        # On a core of its own: the training thread, waking on the same core as the polling
        # partner, had to wait for the scheduler to move one of them (milliseconds).
        os.sched_setaffinity(0, {self.core})
        box, last = self.box, 0
        while True:
            args = (*self.bound, self.scalars, self.result, last, POLLS, *self._functions)
            last, received = self._serve(box, *args)
            if received and box[OP] == STOP:
                box[DONE] = last
                return
            if received:  # BIND: the loop starts again on the new buffers
                box[DONE] = last
                continue
            with self._wake:  # park until the next post (or 50 ms: then poll again)
                box[PARKED] = 1
                if box[SEQ] == last:
                    self._wake.wait(0.05)
                box[PARKED] = 0
