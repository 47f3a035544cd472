"""One MNIST epoch of the Keras MLP (Flatten, Dense 128 relu, Dense 10 softmax; Adam 1e-3,
batch 32) in bptrain, PyTorch's CPU build and Keras 3 on JAX, side by side, alternating, each
at its best thread count (Keras: XLA's own, see ``bench.keras_peer``). Prints the epoch-time
ratio bptrain / each peer and bptrain / the best peer (target: <= 0.7).

    python bench/bench_mlp.py [--batches N] [--repeats R]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import (
    best_thread_time,
    blas_description,
    bptrain_loop,
    mnist,
    peer_ratios,
    thread_counts,
    torch_loop,
)
from bench.keras_peer import keras_loop, version
from bptrain.nn import Adam, Dense, Flatten, Model, Sequential


def bptrain_epoch(x, y, order, batch_size):
    network = Sequential(
        [Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")]
    )
    network.build(x.shape[1:], np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam(1e-3))
    # warm-up, as every side gets: buffers, Adam's slots, its fused kernel (Numba's import)
    bptrain_loop(model, x, y, order[: 3 * batch_size], batch_size)(1)
    return bptrain_loop(model, x, y, order, batch_size)


def torch_epoch(x, y, order, batch_size):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    return torch_loop(model, x, y, order, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="time only the first N batches")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    batch_size = 32
    x, y = mnist("train")
    order = np.random.default_rng(0).permutation(len(x))
    if args.batches:
        order = order[: args.batches * batch_size]
    threads = thread_counts()
    runs = {
        "bptrain": (bptrain_epoch(x, y, order, batch_size), threads),
        "pytorch": (torch_epoch(x, y, order, batch_size), threads),
        "keras": (keras_loop("mlp", x, y, order, batch_size), [max(threads)]),
    }
    best = {name: (float("inf"), 0) for name in runs}
    for _ in range(args.repeats):  # alternate, so machine noise hits every side alike
        for name, (run, counts) in runs.items():
            best[name] = min(best[name], best_thread_time(run, counts))
    steps = -(-len(order) // batch_size)
    print(f"MLP epoch, {len(order)} samples, batch {batch_size}, {steps} steps")
    print(f"NumPy BLAS: {blas_description()}; {version()}")
    for name, (seconds, threads) in best.items():
        per_step = 1e6 * seconds / steps
        print(f"  {name:8s} {seconds:7.3f} s  ({threads} threads, {per_step:.0f} us/step)")
    peers = {name: best[name][0] for name in ("pytorch", "keras")}
    print("\n".join(peer_ratios(best["bptrain"][0], peers, 0.70)))


if __name__ == "__main__":
    main()
