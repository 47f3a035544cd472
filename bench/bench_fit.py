"""``bptrain fit`` itself, the command users run, against each peer's standard training script.

    python -m bench.bench_fit mlp                     # configs/mnist_mlp.yaml, 2 epochs, 2 rounds
    python -m bench.bench_fit lstm --limit 12000      # the first 12,000 images, for quick work
    python -m bench.bench_fit cnn training.replicas=1 # overrides for bptrain fit

Each round runs ``bptrain fit configs/mnist_MODEL.yaml training.epochs=E``, then
``bench.peer_fit torch MODEL`` and ``bench.peer_fit keras MODEL`` (the same model, batch size
and optimizer, trained as each framework's documentation does), each as its own process, one
after the other; rounds alternate so machine noise hits every side alike. Two times count, each
side at its best round: the whole process (start-up, imports, data, every epoch, saving) and
the steady epoch (the fastest epoch after the first, which pays for compilation and warm-up;
training and validation), read from each process's per-epoch lines. PyTorch runs on the cores
``bptrain fit`` computed on (its BLAS threads times its thread replicas, from its summary);
XLA picks its own.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time

from bench.common import REPO, peer_ratios

EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/\d+.*\((\d+(?:\.\d+)?)(ms|s)\)\s*$")
TARGETS = {"mlp": 0.70, "cnn": 0.70, "lstm": 0.90}


def timed_process(command: list[str]) -> tuple[float, list[float], str]:
    """(wall seconds, seconds of each epoch, stdout) of one process."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    epochs = []
    for line in done.stdout.splitlines():
        if match := EPOCH_LINE.match(line.strip()):
            epochs.append(float(match[2]) / (1000 if match[3] == "ms" else 1))
    return wall, epochs, done.stdout


def commands(args, run_dir: str, threads: int) -> dict:
    """Each side's command line: bptrain's writes its run into ``run_dir``; PyTorch runs on
    ``threads``."""
    fit = [sys.executable, "-m", "bptrain", "fit", f"configs/mnist_{args.model}.yaml"]
    fit += [f"training.epochs={args.epochs}", "--progress", "plain", "--run-dir", run_dir]
    fit += [f"data.limit={args.limit}"] if args.limit else []
    fit += args.overrides
    peer = [args.model, "--epochs", str(args.epochs)]
    peer += ["--limit", str(args.limit)] if args.limit else []
    peer_fit = [sys.executable, "-m", "bench.peer_fit"]
    return {
        "bptrain": fit,
        "pytorch": [*peer_fit, "torch", *peer, "--threads", str(threads)],
        "keras": [*peer_fit, "keras", *peer],
    }


def replicas(out: str) -> int:
    """The thread replicas of a ``bptrain fit`` run's summary (1 without): PyTorch gets every
    core bptrain computed on, BLAS threads x replicas."""
    found = re.search(r"data-parallel on (\d+) replicas \(threads\)", out)
    return int(found[1]) if found else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(TARGETS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="the first N training images")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides for bptrain fit")
    args = parser.parse_intermixed_args()
    best = {}
    threads = 1
    with tempfile.TemporaryDirectory() as runs:
        for r in range(args.rounds):
            for name in ("bptrain", "pytorch", "keras"):  # bptrain first: it tells the threads
                wall, epochs, out = timed_process(commands(args, f"{runs}/{r}", threads)[name])
                if found := re.search(r"BLAS threads: (\d+)", out):
                    threads = int(found[1]) * replicas(out)
                steady = min(epochs[1:] or epochs)
                print(f"  round {r}: {name:8s} process {wall:6.2f} s, steady epoch {steady:6.2f} s")
                old = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(old[0], wall), min(old[1], steady))
    print(f"bptrain fit configs/mnist_{args.model}.yaml, {args.epochs} epochs", end="")
    print(f", the first {args.limit} images" if args.limit else ", all 60,000 images")
    for what, i in (("whole process", 0), ("steady epoch", 1)):
        print(f"{what}: " + ", ".join(f"{name} {t[i]:.2f} s" for name, t in best.items()))
        peers = {name: best[name][i] for name in ("pytorch", "keras")}
        print("\n".join(peer_ratios(best["bptrain"][i], peers, TARGETS[args.model])))


if __name__ == "__main__":
    main()
