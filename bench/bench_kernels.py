"""A/B of bptrain's fused kernels against their plain references, alternating in one process.

    python -m bench.bench_kernels mlp            # also: cnn, lstm; --batches N, --rounds R

Trains the benchmark model's step loop (``bench_mlp``, ``bench_cnn``, ``bench_lstm``) on the
same batches, round after round, once with the fused kernels (``kernels.compiled``: Adam's
update, the LSTM's cell) and once with their references (``compiled.MIN_SIZE`` raised past
every buffer), at one and at
every core's BLAS threads; prints each side's best time per step, the ratio fused / plain of
the best times and the median of every round's ratio.
Both sides compute the same bits (but for the MLP's fused softmax cross-entropy, within
rtol 1e-6), so only the time differs. Dense's gradients written in place of zeroing then adding
(``kernels.grads``) are on both sides.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench import bench_cnn, bench_lstm, bench_mlp
from bench.common import best_thread_time, blas_description, bptrain_loop, mnist, thread_counts
from bptrain.nn.kernels import compiled

BATCH = {"mlp": 32, "cnn": 64, "lstm": 64}


def loop(kind: str, x, y, order):
    if kind == "mlp":
        return bench_mlp.bptrain_epoch(x, y, order, BATCH[kind])
    if kind == "lstm":
        return bench_lstm.bptrain_epoch(x, y, order)
    return bptrain_loop(bench_cnn.build_model(), x, y, order, BATCH[kind])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(BATCH))
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    x, y = mnist("train")
    order = np.random.default_rng(0).permutation(len(x))[: args.batches * BATCH[args.model]]
    run, threads, fused_min = loop(args.model, x, y, order), thread_counts(), compiled.MIN_SIZE
    best = {"fused": (float("inf"), 0), "plain": (float("inf"), 0)}
    ratios = []  # fused / plain of each round: paired, so a load that comes and goes cancels
    for _ in range(args.rounds):
        times = {}
        for side in best:
            compiled.MIN_SIZE = fused_min if side == "fused" else np.inf
            times[side] = best_thread_time(run, threads)
            best[side] = min(best[side], times[side])
        ratios.append(times["fused"][0] / times["plain"][0])
    compiled.MIN_SIZE = fused_min
    print(f"{args.model}: {args.batches} steps of batch {BATCH[args.model]}, {args.rounds} rounds")
    print(f"NumPy BLAS: {blas_description()}")
    for side, (seconds, n) in best.items():
        print(f"  {side:6s} {1e6 * seconds / args.batches:8.0f} us/step ({n} threads)")
    print(f"  ratio fused/plain of the best times = {best['fused'][0] / best['plain'][0]:.3f}")
    low, median, high = np.percentile(ratios, [0, 50, 100])
    print(f"  ratio fused/plain per round: median {median:.3f} (from {low:.3f} to {high:.3f})")


if __name__ == "__main__":
    main()
