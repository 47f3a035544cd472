"""``kernels.blas_threads``: the batch's parts, work run on several threads with one BLAS
thread each, and a GEMM split over them giving one GEMM's bits."""

import multiprocessing
import os
import threading

import numpy as np
import pytest

from bptrain.nn.kernels import blas_threads


def test_columns_split_into_one_part_per_thread_of_at_least_min_columns(monkeypatch):
    monkeypatch.setattr(blas_threads, "blas_threads", lambda: 2)
    assert blas_threads.split_columns(64) == [slice(0, 32), slice(32, 64)]
    assert blas_threads.split_columns(63) == [slice(0, 63)]  # 31 a part is too thin
    monkeypatch.setattr(blas_threads, "blas_threads", lambda: 3)
    assert blas_threads.split_columns(100) == [slice(0, 33), slice(33, 66), slice(66, 100)]
    monkeypatch.setattr(blas_threads, "blas_threads", lambda: 1)
    assert blas_threads.split_columns(640) == [slice(0, 640)]


def test_parts_run_on_their_own_threads_with_one_blas_thread():
    seen = {}

    def work(p):
        seen[p] = (threading.get_ident(), blas_threads.blas_threads())

    before = blas_threads.blas_threads()
    blas_threads.on_cores(work, 3)
    assert sorted(seen) == [0, 1, 2]
    assert seen[0][0] == threading.get_ident()  # part 0 on the calling thread
    assert all(seen[p][0] != seen[0][0] for p in (1, 2))
    assert all(n == 1 for _, n in seen.values())
    assert blas_threads.blas_threads() == before  # restored


def test_a_failing_part_raises_and_restores_the_threads():
    before = blas_threads.blas_threads()

    def work(p):
        if p == 1:
            raise ValueError("part 1")

    with pytest.raises(ValueError, match="part 1"):
        blas_threads.on_cores(work, 2)
    assert blas_threads.blas_threads() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(512, 1792, 160), (28, 512, 1792), (10, 8, 12)])
def test_split_gemm_gives_one_gemms_values(shape, dtype):
    m, k, n = shape  # rows split, columns split (the benchmark LSTM's), too small to split
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    out = blas_threads.matmul_on_cores(a, b, 2)
    assert out.dtype == dtype
    # OpenBLAS may pick other kernels for the parts' shapes: the same values to rounding
    # (the same bits for the benchmark's weight-gradient GEMM, checked on the dev machine).
    np.testing.assert_allclose(out, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-12)


def _parts_in_child(out):
    seen = []
    blas_threads.on_cores(seen.append, 2)
    out.put(sorted(seen))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_worker_threads_of_its_own():
    blas_threads.on_cores(lambda p: None, 2)  # the parent's worker exists before the fork
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_parts_in_child, args=(out,), daemon=True)
    child.start()
    assert out.get(timeout=30) == [0, 1]  # a copied dead worker would hang here
    child.join(timeout=30)
    assert child.exitcode == 0
