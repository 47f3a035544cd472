"""Shared helpers for the benchmarks: MNIST arrays, thread control, timing, peak memory.

Benchmarks run bptrain and PyTorch side by side in one process, alternating, so that whatever
else the machine does affects both the same way; they report ratios, not absolute seconds.

The BLAS kernels: some machines set ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) in the
environment, because older OpenBLAS builds compute wrong results or crash on their processors.
NumPy's current OpenBLAS needs neither, and on an AVX-512 machine pinned to the AVX2 "Haswell"
kernels its GEMMs run at half speed (130 against 250 GFLOP/s per core here), while PyTorch's own
oneDNN/MKL kernels ignore the variables. ``run_all`` (``make bench``) therefore runs each
benchmark with both variables removed from that benchmark's environment alone (tests and
training keep them); run a benchmark by hand the same way,
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_cnn``. Every benchmark
prints the kernel set NumPy actually runs (``blas_description``).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from bptrain.config.sections import TrainingOptions
from bptrain.data import load_dataset
from bptrain.nn import backend
from bptrain.train.denormals import flush_denormals
from bptrain.train.threads import second_core_sharing, usable_cores

# The same malloc setting ``bptrain fit`` makes at startup (see ``backend.keep_freed_memory``):
# without it every step faults its large temporaries back in, on both sides.
MALLOC_KEEPS_FREED = backend.keep_freed_memory()

# The environment variables that pin OpenBLAS' kernels (see the module docstring).
BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("BPTRAIN_DATA_DIR", REPO.parent / "shared" / "data"))


def mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST as float32 (N, 1, 28, 28) in [0, 1] and int64 labels, as ``bptrain fit`` loads
    it (all 60,000 training images, in file order), as whole arrays (the peers take them)."""
    spec = {"dataset": "mnist", "validation_split": 0.0, "root": str(DATA_DIR / "mnist")}
    data = load_dataset({**spec, "download": False}, seed=0)
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    return np.asarray(x), y


def blas_description() -> str:
    """NumPy's BLAS, its kernel set, and any pinning variable set in this process."""
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    parts = [f"{i['internal_api']} {i['version']}, kernels {i.get('architecture')}" for i in info]
    pins = [f"{name}={os.environ[name]}" for name in BLAS_PINS if name in os.environ]
    return "; ".join(parts) + f" ({', '.join(pins) if pins else 'kernels chosen by OpenBLAS'})"


def thread_counts() -> list[int]:
    """One thread, and every core this process may use."""
    return sorted({1, usable_cores()})


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def best_thread_time(run, threads: list[int], repeats: int = 1) -> tuple[float, int]:
    """The fastest (seconds, threads) of ``run(threads)`` over thread counts and repeats."""
    best = (float("inf"), 0)
    for _ in range(repeats):
        for n in threads:
            with threadpool_limits(n):
                best = min(best, (timed(run, n), n))
    return best


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_gflops(m: int = 1024, n: int = 1024, k: int = 1024, threads: int | None = None) -> float:
    """GFLOP/s of a plain float32 NumPy GEMM on this machine, the ceiling for our layers."""
    a = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((k, n), dtype=np.float32)
    with threadpool_limits(threads):
        a @ b
        t = min(timed(np.matmul, a, b) for _ in range(5))
    return 2 * m * n * k / t / 1e9


def bptrain_loop(model, x, y, order: np.ndarray, batch_size: int):
    """``run(threads)``: one ``model.train_step`` per ``batch_size`` slice of ``order``, with
    denormals flushed to zero and, on one thread, the Dense layers shared with a second core
    where ``bptrain fit`` would share them (``training.flush_denormals``, ``second_core``)."""

    def run(threads):
        # (fit's default, threads unset: one BLAS thread and the split; threads: 2 is the user's)
        training = TrainingOptions(second_core=threads == 1)
        with flush_denormals(), second_core_sharing(training, model):
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                model.train_step(x[idx], y[idx])

    return run


def torch_loop(net, x, y, order: np.ndarray, batch_size: int, lr: float = 1e-3):
    """``bptrain_loop`` for a PyTorch ``net``: Adam(``lr``) on cross-entropy of its logits."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt, order_t = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(order)

    def run(threads):
        torch_threads(threads)
        for i in range(0, len(order_t), batch_size):
            idx = order_t[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    return run


def peer_ratios(ours: float, peers: dict[str, float], target: float) -> list[str]:
    """Lines with bptrain's time ``ours`` over each peer's time and over the best (fastest)
    peer's, the one the ``target`` ratio is set against."""
    lines = [f"  ratio bptrain/{name} = {ours / t:.2f}" for name, t in peers.items()]
    best = min(peers, key=peers.get)
    verdict = "met" if ours / peers[best] <= target else "not met"
    lines.append(
        f"  ratio bptrain/best peer ({best}) = {ours / peers[best]:.2f}  "
        f"(target <= {target:.2f}: {verdict})"
    )
    return lines
