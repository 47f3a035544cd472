"""One epoch of row-by-row MNIST with LSTM(128) -> Dense(10): bptrain, PyTorch (CPU), Keras/JAX.

Each image is a sequence of 28 rows of 28 pixels; batch 64, Adam 1e-3, sparse cross-entropy
(softmax fused into the loss on every side). The three train in one process, alternating
epoch by epoch, bptrain and PyTorch at every thread count of ``thread_counts()`` (Keras at
XLA's own, see ``bench.keras_peer``); each is scored at its best and the script prints the time
ratios bptrain / each peer and bptrain / the best peer (target: <= 0.90).

    python -m bench.bench_lstm                 # full epoch (938 batches), 2 rounds
    python -m bench.bench_lstm --batches 100   # a prefix of the epoch, for quick iteration
    python -m bench.bench_lstm --profile       # also cProfile one bptrain pass

The per-step GEMMs dominate, so the BLAS kernel set matters: run it through ``make bench`` /
``bench.run_all``, or with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` (see
``bench.common``); the kernel set NumPy runs is printed.
"""

from __future__ import annotations

import argparse

import numpy as np
import threadpoolctl

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
from bptrain.nn import LSTM, Adam, Dense, Model, Reshape, Sequential

BATCH, UNITS, LR = 64, 128, 1e-3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, default=None, help="time only the first N batches")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per thread count")
    p.add_argument("--threads", type=int, nargs="*", default=None, help="thread counts to try")
    p.add_argument("--profile", action="store_true", help="cProfile one bptrain pass")
    return p.parse_args(argv)


def bptrain_epoch(x, y, order):
    network = Sequential([Reshape([28, 28]), LSTM(UNITS), Dense(10, activation="softmax")])
    network.build((1, 28, 28), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam(LR))
    bptrain_loop(model, x, y, order[: 3 * BATCH], BATCH)(1)  # warm-up: buffers, Adam's slots
    return bptrain_loop(model, x, y, order, BATCH)


def torch_epoch(x, y, order):
    import torch

    class RowLSTM(torch.nn.Module):
        """LSTM(128) over the 28 rows of each image, then Dense(10) on its last state."""

        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(28, UNITS, batch_first=True)
            self.head = torch.nn.Linear(UNITS, 10)

        def forward(self, images):
            out, _ = self.lstm(images.reshape(-1, 28, 28))
            return self.head(out[:, -1])

    torch.manual_seed(0)
    net = RowLSTM()
    torch_loop(net, x, y, order[: 3 * BATCH], BATCH, lr=LR)(1)  # warm-up
    return torch_loop(net, x, y, order, BATCH, lr=LR)


def main(args) -> None:
    import torch

    x, y = mnist("train")
    full = -(-len(x) // BATCH)
    n_batches = min(args.batches or full, full)
    threads = args.threads or thread_counts()
    print(f"LSTM({UNITS}) row-by-row MNIST, batch {BATCH}, {n_batches} batches, threads {threads}")
    print(f"numpy {np.__version__} BLAS: {blas_description()}; torch {torch.__version__}")
    print(version())

    order = np.arange(min(n_batches * BATCH, len(x)))  # the first batches, in order
    runs = {
        "bptrain": (bptrain_epoch(x, y, order), threads),
        "torch": (torch_epoch(x, y, order), threads),
        "keras": (keras_loop("lstm", x, y, order, BATCH, lr=LR), [max(threads)]),
    }
    best = {name: (float("inf"), 0) for name in runs}
    for r in range(args.rounds):
        for name, (run, counts) in runs.items():
            t = best_thread_time(run, counts)
            best[name] = min(best[name], t)
            print(f"  round {r}: {name:8s} {t[0]:7.2f} s ({t[1]} threads)", flush=True)
    scale = full / n_batches
    for name, (seconds, n) in best.items():
        print(f"{name:8s} {seconds:6.2f} s at {n} threads (per full epoch {seconds * scale:.1f} s)")
    peers = {name: best[name][0] for name in ("torch", "keras")}
    print("\n".join(peer_ratios(best["bptrain"][0], peers, 0.90)))

    if args.profile:
        import cProfile
        import pstats

        run, nb = runs["bptrain"][0], best["bptrain"][1]
        with threadpoolctl.threadpool_limits(nb):
            prof = cProfile.Profile()
            prof.runcall(run, nb)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main(parse_args())
