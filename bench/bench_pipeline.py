"""Pipeline model parallelism on 2 MPI ranks against one process: step time, the measured
bubble against the theoretical (S-1)/(M+S-1), and memory per rank.

Two models (``--model``), Adam 1e-3, MNIST's training images:

    mlp   Flatten -> Dense 128 relu -> Dense 10 softmax, batch 32 (configs/mnist_mlp.yaml)
    cnn   Conv2D(32, 3) relu -> MaxPool 2 -> Conv2D(64, 3) relu -> MaxPool 2 -> Flatten ->
          Dense 128 relu -> Dense 10 softmax, batch 64 (configs/mnist_cnn.yaml)

Each measurement is a job ``mpiexec -n R python -m mpi4py -m bench.bench_pipeline --worker``
that steps bptrain's own trainer (``Trainer.train_step``; on 2 ranks with ``PipelineRanks``,
the stages split by parameter count unless ``--boundary`` says where stage 2 begins) through
``--batches`` batches after two warm-up steps, with one BLAS thread per rank. The setups are
timed alternately, ``--repeats`` times:

    1 process                                what ``bptrain fit`` does without a pipeline
    2 stages, M micro-batches (gpipe, 1f1b)  ``training.pipeline`` with ``--processes 2``

A rank's bubble is the share of the step it spends outside its stage's forward and backward
passes (waiting for messages, sending, the optimizer step included); a message hand-over is
half the median round trip of a 4 kB message between the two ranks, timed after the steps.
Memory per rank: the bytes of the parameters and optimizer slots it holds, and its peak
resident set size.

    python -m bench.bench_pipeline [--model mlp|cnn] [--batches N] [--repeats R]
                                   [--micro 1,4] [--boundary K]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_mpi import REPO, barrier, busy_core_seconds, loadavg
from bench.bench_mpi import config_for as mpi_config

WARMUP = 2
BATCH = {"mlp": 32, "cnn": 64}


def config_for(model: str, pipeline: dict | None) -> dict:
    return mpi_config(model, BATCH[model], "bench_pipeline", pipeline=pipeline)


# -- one measurement, on every rank of an mpiexec job -------------------------------------------
def worker(model_name: str, batches: int, pipeline: dict | None) -> None:
    from threadpoolctl import threadpool_limits

    from bptrain.config import build_model, resolve_with_overrides
    from bptrain.data import iterate_minibatches, load_dataset
    from bptrain.runs import RunDir
    from bptrain.train import pipeline as pipelines
    from bptrain.train.distributed import world
    from bptrain.train.loop import Trainer, epoch_order, num_outputs
    from bptrain.train.progress import Reporter

    w = world()
    config = resolve_with_overrides(config_for(model_name, pipeline), [])
    data = load_dataset(dict(config.data), config.seed)
    model = build_model(config, data.input_shape, num_outputs(data))
    strategy = pipelines.strategy(config, model, w)[0] if w.size > 1 else None
    model = strategy.model if strategy is not None else model
    batch = config.training.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, data, model, RunDir(Path(tmp)), Reporter(), strategy)
        order = epoch_order(config.seed, 0, len(data.x_train), shuffle=True)
        order = order[: (batches + WARMUP) * batch]
        with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
            steps = iterate_minibatches(data.x_train, data.y_train, batch, order)
            for _ in range(WARMUP):
                trainer.train_step(*next(steps))
            barrier(w)
            busy_before = getattr(strategy, "busy_seconds", 0.0)
            started = time.perf_counter()
            for xb, yb in steps:
                trainer.train_step(xb, yb)
            barrier(w)
            seconds = time.perf_counter() - started
    busy = getattr(strategy, "busy_seconds", seconds) - busy_before
    slots = len(model.optimizer.slots)
    held = sum(p.value.nbytes * (1 + slots) for p in model.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mine = {"bubble": 1 - busy / seconds, "held": held, "peak": peak, "cpu": time.process_time()}
    everyone = w.allgather(mine)
    handover = round_trip(w) / 2
    if w.leader:
        result = {"ranks": w.size, "pipeline": pipeline, "steps": batches, "seconds": seconds}
        result["handover_s"] = handover
        result["per_rank"] = everyone
        print(json.dumps(result), flush=True)


def round_trip(w, repeats: int = 200) -> float:
    """The median seconds for a small message to go from rank 0 to rank 1 and back."""
    if w.size == 1:
        return 0.0
    message, times = np.zeros(1024, dtype=np.float32), []
    for _ in range(repeats):
        barrier(w)
        started = time.perf_counter()
        if w.rank == 0:
            w.comm.Send(message, dest=1)
            w.comm.Recv(message, source=1)
        elif w.rank == 1:
            w.comm.Recv(message, source=0)
            w.comm.Send(message, dest=0)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


# -- the driver ---------------------------------------------------------------------------------
def measure(model: str, batches: int, pipeline: dict | None) -> dict:
    from bptrain.train.distributed import find_mpiexec

    ranks = 1 if pipeline is None else pipeline["stages"]
    command = [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py"]
    command += ["-m", "bench.bench_pipeline", "--worker", "--model", model]
    command += ["--batches", str(batches), "--pipeline", json.dumps(pipeline)]
    busy0, _ = busy_core_seconds()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    busy1, _ = busy_core_seconds()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["busy_core_seconds"] = busy1 - busy0
    return result


def name_of(pipeline: dict | None) -> str:
    if pipeline is None:
        return "1 process"
    p = pipeline
    where = f", stage 2 from layer {p['stage_boundaries'][0]}" if p["stage_boundaries"] else ""
    return f"2 stages, {p['schedule']}, M={p['micro_batches']}{where}"


def describe(r: dict) -> str:
    from bptrain.train.pipeline.schedule import bubble_fraction

    step_ms = 1000 * r["seconds"] / r["steps"]
    text = f"{name_of(r['pipeline']):40s} {step_ms:6.2f} ms/step"
    ranks = r["per_rank"]
    memory = ", ".join(
        f"{m['held'] / 2**20:.2f} MiB held / {m['peak'] / 2**20:.0f} MiB peak" for m in ranks
    )
    if r["pipeline"] is not None:
        theory = bubble_fraction(2, r["pipeline"]["micro_batches"])
        bubbles = ", ".join(f"{100 * m['bubble']:.0f}%" for m in ranks)
        text += f"  bubble by rank {bubbles} (theory {100 * theory:.0f}%)"
        text += f"  message hand-over {1e6 * r['handover_s']:.0f} us"
    return text + f"  memory by rank: {memory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(BATCH), default="mlp")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--micro", default="1,4", help="micro-batch counts, e.g. 1,2,4,8")
    parser.add_argument("--boundary", type=int, help="the layer where stage 2 begins")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", default="null", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.batches, json.loads(args.pipeline))
        return
    bounds = [args.boundary] if args.boundary is not None else None
    setups = [None] + [
        {"stages": 2, "micro_batches": m, "schedule": s, "stage_boundaries": bounds}
        for m in map(int, args.micro.split(","))
        for s in ("gpipe", "1f1b")
    ]
    print(f"model: {args.model}, batch {BATCH[args.model]}, loadavg before: {loadavg()}")
    runs: dict[str, list[dict]] = {name_of(s): [] for s in setups}
    for repeat in range(args.repeats):
        for pipeline in setups if repeat % 2 == 0 else setups[::-1]:
            result = measure(args.model, args.batches, pipeline)
            runs[name_of(pipeline)].append(result)
            print(describe(result), flush=True)
    print("\nbest of each setup:")
    for rs in runs.values():
        print("  " + describe(min(rs, key=lambda r: r["seconds"])))
    print(f"loadavg after: {loadavg()}")


if __name__ == "__main__":
    main()
