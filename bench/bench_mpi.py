"""An MNIST epoch on 1 and on 2 MPI ranks: the data-parallel speed-up and the time spent in
Allreduce.

Two models (``--model``), Adam 1e-3, global batch 64, MNIST's 60,000 training images:

    cnn   Conv2D(32, 3) relu -> MaxPool 2 -> Conv2D(64, 3) relu -> MaxPool 2 -> Flatten ->
          Dense 128 relu -> Dense 10 softmax (the model of configs/mnist_cnn.yaml)
    lstm  Reshape 28x28 -> LSTM(128) -> Dense 10 softmax, the rows as a sequence
          (bench_lstm's model; the model of configs/mnist_lstm.yaml)

Each measurement is a job ``mpiexec -n R python -m mpi4py -m bench.bench_mpi --worker`` that
steps bptrain's own trainer (``Trainer`` on one rank, with ``MPIRanks`` on two: slices of
32, one gradient Allreduce per step) through the first ``--batches`` batches of the epoch's order
after two warm-up steps, with BLAS threads as ``bptrain fit`` sets them. The setups are timed
alternately, ``--repeats`` times, so that other work on the machine affects them alike:

    1 rank x 2 BLAS threads   what ``bptrain fit`` does on one process of this 2-core machine
    1 rank x 1 BLAS thread
    2 ranks x 1 BLAS thread   ``bptrain fit --processes 2``

Prints each run, the best time per setup, the speed-up of 2 ranks over the best 1-rank setup,
and the share of a step each rank spends in Allreduce (waiting for the other rank included),
next to what one Allreduce of the gradients costs when both ranks are ready for it. On a busy
machine wall time says how much CPU the job got as much as how fast it is, so each run also
shows its CPU time per step (all ranks together), the cores it used, and how busy the machine
was with other work (from /proc/stat: busy core-seconds minus this job's, per second).

    python -m bench.bench_mpi [--model cnn|lstm] [--batches N] [--repeats R]
                                                         (--batches 0: the whole epoch)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bptrain.config import load_config

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("BPTRAIN_DATA_DIR", str(REPO.parent / "shared" / "data"))

BATCH = 64
WARMUP = 2
SETUPS = [(1, 2), (1, 1), (2, 1)]  # (ranks, BLAS threads per rank)
MODELS = ("cnn", "lstm")  # the models of configs/mnist_cnn.yaml and configs/mnist_lstm.yaml


def config_for(model: str, batch_size: int = BATCH, bench: str = "bench_mpi", **training) -> dict:
    """One MNIST epoch of the model of configs/mnist_MODEL.yaml (Adam 1e-3, no validation
    split, no plots), named ``BENCH_MODEL``; ``training`` adds keys to its training section."""
    return {
        "name": f"{bench}_{model}",
        "seed": 0,
        "data": {"dataset": "mnist", "validation_split": 0.0},
        "model": load_config(REPO / "configs" / f"mnist_{model}.yaml").to_dict()["model"],
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "metrics": ["accuracy"],
        "training": {"epochs": 1, "batch_size": batch_size, "plots": False, **training},
    }


# -- one measurement, on every rank of an mpiexec job -------------------------------------------
def worker(model_name: str, batches: int, threads: int) -> None:
    from threadpoolctl import threadpool_limits

    from bptrain.config import build_model, resolve_with_overrides
    from bptrain.data import iterate_minibatches, load_dataset
    from bptrain.runs import RunDir
    from bptrain.train.data_parallel import MPIRanks
    from bptrain.train.distributed import world
    from bptrain.train.loop import Trainer, epoch_order, num_outputs
    from bptrain.train.progress import Reporter

    w = world()
    config = resolve_with_overrides(config_for(model_name), [])
    data = load_dataset(dict(config.data), config.seed)
    model = build_model(config, data.input_shape, num_outputs(data))
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        strategy = MPIRanks(model, w) if w.size > 1 else None
        trainer = Trainer(config, data, model, run, Reporter(), strategy)
        order = epoch_order(config.seed, 0, len(data.x_train), shuffle=True)
        steps = batches or -(-len(order) // BATCH)
        order = order[: (steps + WARMUP) * BATCH]
        with threadpool_limits(limits=threads, user_api="blas"), np.errstate(all="ignore"):
            batches_iter = iterate_minibatches(data.x_train, data.y_train, BATCH, order)
            for _ in range(WARMUP):
                trainer.train_step(*next(batches_iter))
            barrier(w)
            reduce_before, cpu_before = w.reduce_seconds, time.process_time()
            started = time.perf_counter()
            for xb, yb in batches_iter:
                trainer.train_step(xb, yb)
            barrier(w)
            seconds = time.perf_counter() - started
    mine = {
        "reduce_seconds": w.reduce_seconds - reduce_before,
        "cpu_seconds": time.process_time() - cpu_before,
    }
    everyone = w.allgather(mine)
    transfer = allreduce_alone(w, model.parameters().flat_grad)
    if w.leader:
        result = {"ranks": w.size, "threads": threads, "steps": steps, "seconds": seconds}
        result["reduce_seconds"] = [r["reduce_seconds"] for r in everyone]
        result["allreduce_alone_s"] = transfer
        result["cpu_seconds"] = sum(r["cpu_seconds"] for r in everyone)
        print(json.dumps(result), flush=True)


def barrier(w) -> None:
    if w.size > 1:
        w.comm.Barrier()


def allreduce_alone(w, flat_grad, repeats: int = 50) -> float:
    """The median seconds of one gradient Allreduce when both ranks are ready for it (a barrier
    first): its cost without waiting for a slower rank."""
    if w.size == 1:
        return 0.0
    times = []
    for _ in range(repeats):
        barrier(w)
        started = time.perf_counter()
        w.allreduce_sum(flat_grad)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


# -- the driver ---------------------------------------------------------------------------------
def busy_core_seconds() -> tuple[float, float]:
    """(busy, total) core-seconds since boot, from /proc/stat (all CPUs)."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / hz, sum(fields) / hz


def measure(model: str, ranks: int, threads: int, batches: int) -> dict:
    from bptrain.train.distributed import find_mpiexec

    command = [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py"]
    command += ["-m", "bench.bench_mpi", "--worker", "--model", model, "--batches", str(batches)]
    command += ["--threads", str(threads)]
    busy0, _ = busy_core_seconds()
    wall0 = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - wall0
    busy1, _ = busy_core_seconds()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Busy core-seconds of everything else on the machine during the job (its start-up and data
    # loading are this job's, but not counted in cpu_seconds: an overestimate of the others).
    result["others_cores"] = (busy1 - busy0 - result["cpu_seconds"]) / wall
    return result


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def describe(r: dict) -> str:
    step_ms = 1000 * r["seconds"] / r["steps"]
    cpu_ms = 1000 * r["cpu_seconds"] / r["steps"]  # all ranks together
    share = ", ".join(f"{100 * s / r['seconds']:.1f}%" for s in r["reduce_seconds"])
    alone = 1000 * r.get("allreduce_alone_s", 0.0)
    reduce = (
        f"\n    in Allreduce: {share} of the time (by rank); alone, one takes {alone:.2f} ms"
        if r["ranks"] > 1
        else ""
    )
    return (
        f"{r['ranks']} rank(s) x {r['threads']} thread(s): {r['seconds']:7.2f} s for "
        f"{r['steps']} steps ({step_ms:.1f} ms/step, CPU {cpu_ms:.1f} ms/step){reduce}  [this "
        f"job used {r['cpu_seconds'] / r['seconds']:.2f} cores, other work "
        f"{r['others_cores']:.2f}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="cnn")
    parser.add_argument("--batches", type=int, default=200, help="steps to time; 0: the epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.batches, args.threads)
        return

    print(f"model: {args.model}, cores: {os.cpu_count()}, loadavg before: {loadavg()}")
    runs: dict[tuple[int, int], list[dict]] = {s: [] for s in SETUPS}
    for repeat in range(args.repeats):
        order = SETUPS if repeat % 2 == 0 else SETUPS[::-1]
        for ranks, threads in order:
            result = measure(args.model, ranks, threads, args.batches)
            runs[(ranks, threads)].append(result)
            print(describe(result), flush=True)

    best = {s: min(rs, key=lambda r: r["seconds"]) for s, rs in runs.items()}
    print("\nbest of each setup:")
    for s in SETUPS:
        print("  " + describe(best[s]))
    one = min((best[s] for s in SETUPS if s[0] == 1), key=lambda r: r["seconds"])
    two = best[(2, 1)]
    print(
        f"\nspeed-up of 2 ranks over the best 1-rank setup ({one['threads']} thread(s)): "
        f"{one['seconds'] / two['seconds']:.2f}x (best of {args.repeats} each)"
    )
    per_repeat = [
        min(runs[(1, 2)][i]["seconds"], runs[(1, 1)][i]["seconds"]) / runs[(2, 1)][i]["seconds"]
        for i in range(args.repeats)
    ]
    print(f"per repeat: {', '.join(f'{x:.2f}x' for x in per_repeat)}")
    shares = [s / r["seconds"] for r in runs[(2, 1)] for s in r["reduce_seconds"]]
    alone = [r["allreduce_alone_s"] * r["steps"] / r["seconds"] for r in runs[(2, 1)]]
    print(
        f"time in Allreduce on 2 ranks (waiting for the other rank included): "
        f"{100 * min(shares):.1f}% to {100 * max(shares):.1f}% of the run; the Allreduces "
        f"alone would take {100 * min(alone):.1f}% to {100 * max(alone):.1f}%"
    )
    print(f"loadavg after: {loadavg()}")


if __name__ == "__main__":
    main()
