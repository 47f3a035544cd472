"""Run the benchmarks one after another and print their reports.

    python bench/run_all.py            # speed: bptrain against PyTorch's CPU build
    python bench/run_all.py --train    # also the full training runs that prove accuracy targets

Each benchmark is its own process so that one's memory and threads never affect the next.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEED = ["bench_mlp", "bench_cnn", "bench_lstm", "bench_mpi"]
TRAIN = ["train_mnist_mlp", "train_mnist_cnn", "train_mnist_lstm"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="also run the accuracy trainings")
    args = parser.parse_args()
    names = SPEED + (TRAIN if args.train else [])
    failed = []
    for name in names:
        if not (REPO / "bench" / f"{name}.py").exists():
            continue
        print(f"== {name}", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=REPO)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
