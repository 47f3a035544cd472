"""The cost of ``data.augment`` on the MNIST CNN: augmentation time per batch against the
time of a training step (goal: under 10%).

Conv2D(32, 3) relu -> MaxPool 2 -> Conv2D(64, 3) relu -> MaxPool 2 -> Dense 128 -> Dense 10,
Adam, batch 64, one BLAS thread. All four transforms run on each batch (shift 2, horizontal
flip, rotation 10 degrees, a 26x26 crop); a batch's augmentation and its training step are
timed back to back, so that both see the same load on a shared machine.

    python -m bench.bench_augment [--batches N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench.bench_cnn import BATCH, build_model
from bench.common import mnist
from bptrain.data.augment import Augmenter

AUGMENT = [
    {"type": "random_shift", "pixels": 2},
    {"type": "random_flip", "mode": "horizontal"},
    {"type": "random_rotation", "degrees": 10},
    {"type": "random_crop", "size": [26, 26]},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x, y = mnist()
    model = build_model()
    augment = Augmenter(AUGMENT, seed=0)
    order = np.random.default_rng(0).permutation(len(x))[: args.batches * BATCH]
    steps, augments = [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for repeat in range(args.repeats):
            for i in range(args.batches):
                idx = order[i * BATCH : (i + 1) * BATCH]
                xb, yb = x[idx], y[idx]
                started = time.perf_counter()
                xa = augment(xb, repeat, i)
                augmented = time.perf_counter()
                model.train_step(xa, yb)
                steps.append(time.perf_counter() - augmented)
                augments.append(augmented - started)
    step, aug = np.median(steps) * 1e3, np.median(augments) * 1e3
    print(f"MNIST CNN, batch {BATCH}, 1 BLAS thread, {args.batches} batches x {args.repeats}")
    print(f"training step (median):          {step:.2f} ms")
    print(
        f"augmentation of a batch (median): {aug:.3f} ms ({', '.join(a['type'] for a in AUGMENT)})"
    )
    print(f"overhead: {100 * aug / step:.1f}% of a step (goal: < 10%)")


if __name__ == "__main__":
    main()
