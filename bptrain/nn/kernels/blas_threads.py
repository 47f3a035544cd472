"""OpenBLAS' thread count read and switched per call, and a batch split over the cores.

A recurrent time loop is a chain of small GEMMs, each followed by elementwise work on its
output. With two BLAS threads each GEMM is split over the two cores, and every step moves the
half written on the second core to the first (and the first core's elementwise results back):
on the 2-core dev machine (cores on different CCDs) that traffic cost about a quarter of each
step. The sequences of a batch are independent, though, so the loop itself can be split: each
core runs the whole time loop for its own columns (sequences) of the batch, with BLAS on one
thread, and nothing crosses between cores until the loop ends (``split_columns``,
``on_cores``). The compiled step loops release the GIL (``kernels.compiled``), as NumPy does
in its calls, so the threads overlap.

Such a layer then runs its large GEMMs split over the same threads too (``matmul_on_cores``):
OpenBLAS' own threads spin for a while after each call that woke them (about 0.1 s), and a
spinning one competed with the split time loop for its core: the benchmark LSTM's backward
pass measured 5.5 ms with its weight-gradient GEMM on two BLAS threads, 4.5 with it split.

Switching OpenBLAS' thread count through a kept threadpoolctl controller costs about 1 us
(``threadpool_limits`` rescans the loaded libraries: about 0.7 ms).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from bptrain.nn import backend

# Fewer columns than this per part make the per-step GEMMs too thin to pay for the thread.
MIN_COLUMNS = 32

_openblas: list = []  # [controller or None], found once
_pool: dict = {}  # {"pid", "workers", "executor"}


def _controller():
    """threadpoolctl's controller of NumPy's OpenBLAS, or None (another BLAS, CuPy)."""
    if not _openblas:
        found = openblas_controllers()
        _openblas.append(found[0] if found else None)
    return _openblas[0]


def openblas_controllers() -> list:
    """threadpoolctl's controllers of every OpenBLAS this process has loaded, NumPy's first
    (then any other library's: SciPy's, or one a benchmark's peer brought), or [] without
    threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    libs = threadpoolctl.ThreadpoolController().lib_controllers
    found = [c for c in libs if c.internal_api == "openblas"]
    return sorted(found, key=lambda c: "numpy" not in c.filepath)  # NumPy's first


def blas_threads() -> int:
    """The threads OpenBLAS uses now (1 where it is not NumPy's BLAS)."""
    c = _controller() if backend.name == "numpy" else None
    return c.num_threads if c is not None else 1


def split_columns(n: int) -> list[slice]:
    """The batch's n columns in contiguous parts, one per BLAS thread, each at least
    ``MIN_COLUMNS`` wide (a single part when that leaves one)."""
    k = max(1, min(blas_threads(), n // MIN_COLUMNS))
    return [slice(n * p // k, n * (p + 1) // k) for p in range(k)]


# The cores this process may use, as it started (a thread made by a pinned thread inherits its
# pin: ``second_core.sharing`` keeps the training thread off its partner's core).
_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def _executor(workers: int) -> ThreadPoolExecutor:
    """A kept pool of ``workers`` threads on every core of ``_CORES`` (made again in a forked
    child, whose copy of the parent's pool has no threads)."""
    pool = _pool.get("executor")
    if pool is None or _pool["pid"] != os.getpid() or _pool["workers"] < workers:
        pool = ThreadPoolExecutor(workers, "bptrain-cores", initializer=_on_every_core)
        _pool.update(pid=os.getpid(), workers=workers, executor=pool)
    return pool


def _on_every_core() -> None:
    if _CORES is not None:
        os.sched_setaffinity(0, _CORES)


def on_cores(work, parts: int) -> None:
    """``work(0)``, ..., ``work(parts - 1)`` side by side, ``work(0)`` on the calling thread,
    with OpenBLAS on one thread meanwhile (restored after). The parts must write disjoint
    arrays: their results do not depend on the threads' timing."""
    if parts == 1:
        work(0)
        return
    c = _controller()
    threads = c.num_threads if c is not None else 1
    if c is not None:
        c.set_num_threads(1)
    try:
        futures = [_executor(parts - 1).submit(work, p) for p in range(1, parts)]
        try:
            work(0)
        finally:
            for f in futures:
                f.result()
    finally:
        if c is not None:
            c.set_num_threads(threads)


def matmul_on_cores(a, b, parts: int):
    """``a @ b`` (2-D) with the larger of a's rows and b's columns split into ``parts`` (each
    at least 16), one part a core (``on_cores``): the same values as one GEMM."""
    by_rows = a.shape[0] >= b.shape[1]
    size = a.shape[0] if by_rows else b.shape[1]
    k = max(1, min(parts, size // 16))
    if k == 1:
        return a @ b
    xp = backend.xp  # NumPy: parts > 1 only there (``blas_threads``)
    out = xp.empty((a.shape[0], b.shape[1]), dtype=xp.result_type(a, b))
    cuts = [slice(size * p // k, size * (p + 1) // k) for p in range(k)]

    def run(p: int) -> None:
        if by_rows:
            xp.matmul(a[cuts[p]], b, out=out[cuts[p]])
        else:
            xp.matmul(a, b[:, cuts[p]], out=out[:, cuts[p]])

    on_cores(run, k)
    return out
