"""Run under ``mpiexec -n 4``: one float64 training step of a pipeline of S = 2 and 3 stages
(and 2 stages x 2 data-parallel replicas) with M = 1, 2, 4 micro-batches in both schedules,
against the same step in one process: an MLP with Dropout, and with BatchNorm too for M = 1
(with more micro-batches BatchNorm normalises each alone). Each rank checks its own stage
(the loss, every gradient, the updated weights, the dropout generator) and rank 0 prints one
line per case and rank, ``model S D M schedule rank error`` (the largest relative
difference), for the test."""

from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

from bptrain.config import build_model, resolve_with_overrides
from bptrain.config.sections import PipelineOptions
from bptrain.train.metrics import RunningMetrics
from bptrain.train.pipeline import PipelineRanks, stage_of

LAYERS = [
    {"type": "Dense", "units": 8, "activation": "relu", "kernel_regularizer": "l2"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 6, "activation": "tanh"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
]
WITH_BATCH_NORM = [LAYERS[0], {"type": "BatchNorm"}, *LAYERS[1:]]
CONFIG = {
    "seed": 5,
    "data": {"dataset": "spirals", "size": 10},
    "loss": "sparse_categorical_crossentropy",
    "optimizer": {"type": "adam", "learning_rate": 0.05},
}


class SubWorld:
    """The ranks of ``comm`` as a world (what PipelineRanks uses of ``MPIWorld``)."""

    def __init__(self, comm):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size, self.leader = comm.Get_rank(), comm.Get_size(), comm.Get_rank() == 0

    def allreduce_sum(self, a):
        self.comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
        return a


def model(layers):
    built = build_model(resolve_with_overrides({**CONFIG, "model": {"layers": layers}}), (2,), 3)
    built.cast(np.float64)
    return built


def relative(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def case(world, layers, stages, micro, schedule, x, y) -> float:
    reference = model(layers)
    loss = reference.compute_gradients(x, y)
    grads = {name: p.grad.copy() for name, p in reference.network.named_parameters()}
    reference.apply_gradients()
    after = reference.network.weights()

    whole = model(layers)
    bounds = {2: [2], 3: [1, 3]}[stages]
    stage = stage_of(whole, bounds, world.rank % stages, world.size // stages)
    options = PipelineOptions(stages=stages, micro_batches=micro, schedule=schedule)
    ranks = PipelineRanks(stage, world, options)
    metrics = RunningMetrics([], "classification", 3, 3)
    got, _ = ranks.reduce(*ranks.compute_gradients(x, y, metrics))
    errors = [abs(got - loss) / abs(loss)]
    errors += [relative(p.grad, grads[n]) for n, p in stage.network.named_parameters()]
    stage.apply_gradients()
    errors += [relative(v, after[n]) for n, v in stage.weights().items()]
    # the stage holds its layers' parameters and optimizer slots, and no others
    own = [layer.name for layer in whole.network.layers[: len(layers)]]
    start = ([0, *bounds])[stage.index]
    assert [layer.name for layer in stage.layers] == own[start : start + len(stage.layers)]
    size = sum(p.size for p in stage.parameters())
    assert {s: v.size for s, v in stage.optimizer.slots.items()} == {"m": size, "v": size}
    # the generator moved as one process's
    assert stage.rng_state() == reference.network.rng_state()
    return max(errors)


CASES = [
    (name, layers, micro, schedule)
    for name, layers, micros in (
        ("dropout", LAYERS, (1, 2, 4)),
        ("batchnorm", WITH_BATCH_NORM, (1,)),
    )
    for micro in micros
    for schedule in ("gpipe", "1f1b")
]


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(11, 2)), rng.integers(0, 3, size=11)
    world = MPI.COMM_WORLD
    rank, lines = world.Get_rank(), []
    for stages, replicas in ((2, 1), (3, 1), (2, 2)):
        comm = world.Split(0 if rank < stages * replicas else MPI.UNDEFINED, rank)
        for name, layers, micro, schedule in CASES:
            error = None
            if comm != MPI.COMM_NULL:
                error = case(SubWorld(comm), layers, stages, micro, schedule, x, y)
            for r, e in enumerate(world.gather(error, root=0) or []):
                if e is not None:
                    lines.append(f"{name} {stages} {replicas} {micro} {schedule} {r} {e:.3e}")
    if rank == 0:
        sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
