"""One MNIST epoch of a small CNN in bptrain, PyTorch's CPU build and Keras 3 on JAX, side by side.

Conv2D(32, 3) relu -> MaxPool 2 -> Conv2D(64, 3) relu -> MaxPool 2 -> Flatten -> Dense 128 relu
-> Dense 10 softmax (fused into sparse cross-entropy); Adam 1e-3, batch 64. Both start from the
same weights, see the same batches, and are timed alternately at every thread count; each is
reported at its best. A third row runs bptrain as 2 replicas (``training.replicas: 2``: two
model copies sharing the weights, each computing half of every batch in its own thread with one
BLAS thread; bptrain.train.replicas). Keras runs at XLA's own thread count, in NHWC (see
``bench.keras_peer``). Prints the epoch-time ratios bptrain / PyTorch of the single model, of
bptrain's best configuration against each peer and against the best peer (target: <= 1.0),
the achieved GFLOP/s against a plain NumPy GEMM, and the peak memory (limit: 2 GiB).

    python -m bench.bench_cnn [--batches N] [--repeats R] [--profile]

Run it through ``make bench`` / ``bench.run_all``, or with ``env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE`` (see ``bench.common``): the kernel set NumPy runs is printed.

Both sides run in one process and share glibc's malloc. ``bench.common`` makes the setting
``bptrain fit`` makes (``backend.keep_freed_memory``), so neither side faults its freed step
arrays back in every step; page faults per step are printed for each side to show it.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import (
    MALLOC_KEEPS_FREED,
    best_thread_time,
    blas_description,
    bptrain_loop,
    gemm_gflops,
    mnist,
    peak_rss_mib,
    peer_ratios,
    thread_counts,
    torch_loop,
)
from bench.keras_peer import keras_loop, version
from bptrain.nn import Adam, Conv2D, Dense, Flatten, MaxPool2D, Model, Sequential
from bptrain.train.metrics import RunningMetrics
from bptrain.train.replicas import ThreadReplicas

BATCH = 64


def build_model() -> Model:
    network = Sequential(
        [
            Conv2D(32, 3, activation="relu"),
            MaxPool2D(2),
            Conv2D(64, 3, activation="relu"),
            MaxPool2D(2),
            Flatten(),
            Dense(128, activation="relu"),
            Dense(10, activation="softmax"),
        ]
    )
    network.build((1, 28, 28), np.random.default_rng(0))
    return Model(network, "sparse_categorical_crossentropy", Adam(1e-3))


def flops_per_sample(model: Model) -> float:
    """Multiply-adds x 2 of one training step per sample: forward, and backward's weight and
    input gradients (no input gradient for the first layer, which PyTorch skips too)."""
    total = 0.0
    for i, layer in enumerate(model.network.layers):
        if isinstance(layer, Conv2D):
            f, ho, wo = layer.output_shape
            forward = 2.0 * f * ho * wo * layer.kernel.value[0].size
        elif isinstance(layer, Dense):
            forward = 2.0 * layer.kernel.value.size
        else:
            continue
        total += forward * (2 if i == 0 else 3)
    return total


def counting_faults(run, counts: list):
    """``run`` that also adds the page faults (minor, process-wide) it took to ``counts[0]``."""

    def counted(threads):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        run(threads)
        counts[0] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        counts[1] += 1

    return counted


def replicas_runner(model, x, y, order, count: int):
    """``bptrain_loop`` with each batch split over ``count`` replicas of ``model`` (run it
    with BLAS limited to one thread)."""
    together = ThreadReplicas([model, *(build_model() for _ in range(count - 1))])
    metrics = RunningMetrics([], "classification")

    def run(threads):
        with together.running():
            for i in range(0, len(order), BATCH):
                idx = order[i : i + BATCH]
                together.reduce(*together.compute_gradients(x[idx], y[idx], metrics))
                model.apply_gradients()

    return run


def torch_runner(model, x, y, order):
    import torch
    from torch import nn

    layers = [model.network.layers[i] for i in (0, 2, 5, 6)]
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    with torch.no_grad():  # the same starting weights (Dense kernels are (in, out) here)
        for ours, theirs in zip(layers, [net[0], net[3], net[7], net[9]], strict=True):
            kernel = ours.kernel.value
            theirs.weight.copy_(torch.from_numpy(kernel if kernel.ndim == 4 else kernel.T.copy()))
            theirs.bias.copy_(torch.from_numpy(ours.bias.value))
    return torch_loop(net, x, y, order, BATCH)


def profile_bptrain(model, x, y, order, threads: int) -> None:
    """Time every layer's forward and backward, and the optimizer step, per batch."""
    times: dict[str, float] = defaultdict(float)

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            times[key] += time.perf_counter() - start
            return out

        return wrapper

    for layer in model.network.runs:  # the layers that run: fused pairs as one
        layer.forward = timed(f"{layer.name} forward", layer.forward)
        layer.backward = timed(f"{layer.name} backward", layer.backward)
    model.optimizer.step = timed("optimizer step", model.optimizer.step)
    steps = -(-len(order) // BATCH)
    with threadpool_limits(threads):
        start = time.perf_counter()
        bptrain_loop(model, x, y, order, BATCH)(threads)
        total = time.perf_counter() - start
    print(f"\nbptrain per batch, {threads} thread(s): {1e3 * total / steps:.2f} ms")
    times["loss, batches, other"] = total - sum(times.values())
    for key, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {key:22s} {1e3 * seconds / steps:6.2f} ms  {100 * seconds / total:5.1f}%")


def profile_torch(run, threads: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with threadpool_limits(threads), profile(activities=[ProfilerActivity.CPU]) as prof:
        run(threads)
    print(f"\nPyTorch, {threads} thread(s), by operator:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="time only the first N batches")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="also time each op, per batch")
    args = parser.parse_args()

    x, y = mnist("train")
    order = np.random.default_rng(0).permutation(len(x))
    if args.batches:
        order = order[: args.batches * BATCH]
    steps = -(-len(order) // BATCH)
    threads = thread_counts()
    model = build_model()
    ours, theirs = (float("inf"), 0), (float("inf"), 0)
    replicas, split, keras = 2, (float("inf"), 1), (float("inf"), 0)
    faults = {"bptrain": [0, 0], "pytorch": [0, 0], "replicas": [0, 0]}
    bp = counting_faults(bptrain_loop(model, x, y, order, BATCH), faults["bptrain"])
    rp = counting_faults(replicas_runner(model, x, y, order, replicas), faults["replicas"])
    tc = torch_runner(model, x, y, order)
    tc_counted = counting_faults(tc, faults["pytorch"])
    kr = keras_loop("cnn", x, y, order, BATCH)  # compiled and warmed up
    warm = order[: 8 * BATCH]  # warm up both (buffers, allocator, oneDNN kernels)
    bptrain_loop(model, x, y, warm, BATCH)(1)
    torch_runner(model, x, y, warm)(1)
    with threadpool_limits(1):
        replicas_runner(model, x, y, warm, replicas)(1)
    for _ in range(args.repeats):  # alternate, so machine noise hits both sides alike
        for n in threads:
            ours = min(ours, best_thread_time(bp, [n]))
            theirs = min(theirs, best_thread_time(tc_counted, [n]))
        split = min(split, best_thread_time(rp, [1]))
        keras = min(keras, best_thread_time(kr, [max(threads)]))

    flops = flops_per_sample(model) * len(order)
    print(f"MNIST CNN, {len(order)} samples, batch {BATCH}, {steps} steps")
    print(f"NumPy BLAS: {blas_description()}; malloc keeps freed memory: {MALLOC_KEEPS_FREED}")
    print(version())
    rows = (("bptrain", ours), ("replicas", split), ("pytorch", theirs))
    for name, (seconds, n) in rows:
        count, runs = faults[name]
        label = f"bptrain, {replicas} replicas" if name == "replicas" else name
        how = f"{n} thread{'s' * (n > 1)}" + (" each" if name == "replicas" else "")
        print(
            f"  {label:20s} {seconds:7.3f} s  ({how}, "
            f"{1e3 * seconds / steps:.2f} ms/step, {flops / seconds / 1e9:.1f} GFLOP/s, "
            f"{count / (runs * steps):.0f} page faults/step)"
        )
    print(f"  {'keras (jax)':20s} {keras[0]:7.3f} s  ({1e3 * keras[0] / steps:.2f} ms/step)")
    for n in threads:
        print(f"  NumPy float32 GEMM 1024^3 at {n} thread(s): {gemm_gflops(threads=n):.1f} GFLOP/s")
    print(f"  ratio bptrain/pytorch = {ours[0] / theirs[0]:.2f}  (one model)")
    best = "2 replicas" if split[0] < ours[0] else "one model"
    print(f"  bptrain's best: {best}")
    peers = {"pytorch": theirs[0], "keras": keras[0]}
    print("\n".join(peer_ratios(min(ours[0], split[0]), peers, 1.00)))
    print(f"  peak memory {peak_rss_mib():.0f} MiB  (limit 2048)")
    if args.profile:
        profile_bptrain(model, x, y, order, ours[1])
        profile_torch(tc, theirs[1])


if __name__ == "__main__":
    main()
