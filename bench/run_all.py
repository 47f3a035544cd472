"""Run the benchmarks one after another and print their reports.

    python -m bench.run_all            # speed: bptrain against PyTorch (CPU) and Keras 3 on JAX
    python -m bench.run_all --train    # also the full training runs that prove accuracy targets

Each benchmark is its own process so that one's memory and threads never affect the next, and
runs without the OpenBLAS kernel pins some machines set (``bench.common.BLAS_PINS``; the
benchmark's own environment only), so NumPy runs the kernels OpenBLAS picks for the processor.
``--environment-blas`` keeps them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench.common import BLAS_PINS

REPO = Path(__file__).resolve().parents[1]
# (module, arguments)
SPEED = [
    ("bench_mlp", []),
    ("bench_cnn", []),
    ("bench_lstm", []),
    ("bench_mpi", ["--model", "cnn"]),
    ("bench_mpi", ["--model", "lstm"]),
    ("bench_fit", ["mlp", "--epochs", "3", "--rounds", "3"]),
    ("bench_fit", ["cnn", "--epochs", "2", "--rounds", "2"]),
    ("bench_fit", ["lstm", "--epochs", "2", "--rounds", "2"]),
    ("bench_diagnostics", []),
]
TRAIN = [
    ("train_mnist_mlp", []),
    ("train_mnist_cnn", []),
    ("train_rnn_config", ["configs/mnist_lstm.yaml"]),
    ("train_rnn_config", ["configs/adding_gru.yaml"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="also run the accuracy trainings")
    parser.add_argument(
        "--environment-blas", action="store_true", help="keep OPENBLAS_CORETYPE/_L2_SIZE if set"
    )
    args = parser.parse_args()
    pins = () if args.environment_blas else BLAS_PINS
    env = {k: v for k, v in os.environ.items() if k not in pins}
    names = SPEED + (TRAIN if args.train else [])
    failed = []
    for name, extra in names:
        label = " ".join([name, *extra])
        print(f"== {label}", flush=True)
        command = [sys.executable, "-m", f"bench.{name}", *extra]
        done = subprocess.run(command, cwd=REPO, env=env)
        if done.returncode:
            failed.append(label)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
