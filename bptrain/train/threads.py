"""How many BLAS threads a training run uses (``blas_threads``), and which of its weights it
splits with a second core (``second_core_weights``, ``bptrain.nn.kernels.second_core``).

Small models run fastest on one thread when anything else runs on the machine: OpenBLAS'
threads spin-wait for each other, so a GEMM split over two cores waits whenever another process
holds one of them (the MNIST MLP's epoch took 6.7-21 s instead of 0.5 on 2 threads beside one
busy process). Large models gain enough from every core to take that risk. Measured on the
quiet 2-core dev machine (Adam steps, denormals flushed; 1 thread against 2): the MNIST MLP
(784-128-10, batch 32, 10M multiply-adds a step) 0.22 against 0.20 ms; 784-256-10 at batch 64
(39M) 0.67 against 0.50; 784-512-10 at batch 128 (156M) 2.3 against 1.4; the row-by-row MNIST
LSTM(128) at batch 64 (432M) 11.1 against 6.3 ms in ``bptrain fit`` (separate processes,
alternating); 784-1024-10 at batch 256 (625M) 9.4 against 5.2. From ``PARALLEL_WORK`` on, a run
uses every core.
"""

from __future__ import annotations

import math
import os

from bptrain.config.sections import TrainingOptions
from bptrain.nn import Dense, backend
from bptrain.nn.kernels import compiled, second_core

# Multiply-adds per training step above which more threads pay off (measured on 2 cores).
PARALLEL_WORK = 100e6
# Multiply-adds of one GEMM of a Dense kernel (batch x kernel size) from which splitting it with
# a second core pays. Measured in ``bptrain fit`` epochs, split against not: the MNIST MLP at
# batch 16 (1.6M) 0.49 against 0.64 s; 256x256 hidden layers at batch 16 (1.0M) even; 128x128
# at batch 16 (0.26M) 45 against 31 ms.
SPLIT_WORK = 1.5e6


def step_work(network, batch_size: int) -> float:
    """Rough multiply-adds of one training step: each parameter is used once per sample and per
    position (pixels of a convolution, time steps of a sequence: of its input or output,
    whichever has more, as a recurrent layer may return its last step only), three times
    (forward, and the two gradients)."""
    total = 0.0
    for layer in network.layers:
        n = sum(p.size for p in layer.parameters())
        shapes = (layer.input_shape or (), layer.output_shape or ())
        total += 3.0 * n * max(map(_positions, shapes)) * batch_size
    return total


def _positions(shape) -> int:
    """Positions of a per-sample shape: (C, H, W) images have H x W, (T, D) sequences T."""
    shape = tuple(shape)
    return math.prod(shape[1:]) if len(shape) >= 3 else math.prod(shape[:-1])


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def default_threads(network, batch_size: int) -> int:
    return 1 if step_work(network, batch_size) < PARALLEL_WORK else usable_cores()


def blas_threads(training: TrainingOptions, network, world) -> int:
    """The BLAS threads of a run: ``training.threads``, else the default for the network, shared
    with the other MPI ranks on this machine; 1 with thread replicas, which run side by side with
    one BLAS thread each (threadpoolctl's limit is process-wide)."""
    if training.replicas > 1:
        return 1
    return world.share_cores(training.threads or default_threads(network, training.batch_size))


def second_core_weights(training: TrainingOptions, model, single_model: bool) -> list:
    """The weight matrices a run splits in two (``kernels.second_core``), or []: with
    ``training.second_core``, for one model (``single_model``: no replicas, MPI ranks or
    pipeline stages) on NumPy whose update is a compiled pass (``Optimizer.compiled_update``:
    Adam, SGD, RMSprop) over at least ``compiled.MIN_SIZE`` parameters, small enough for one
    BLAS thread by default (``threads`` unset, ``step_work`` below ``PARALLEL_WORK``), its
    Dense layers' ``splittable`` kernels whose GEMMs are worth it (``SPLIT_WORK``). The config
    alone decides, so the values do not depend on the machine; a partner thread computes the
    second halves on a second core where one can run (``can_partner``). On the MNIST MLP the
    step took 190 us instead of 250 (alternating on the 2-core dev machine)."""
    if not (training.second_core and training.threads is None and single_model):
        return []
    if backend.name != "numpy" or not getattr(model.optimizer, "compiled_update", False):
        return []  # (with the update on one core, split GEMMs measured as slow or slower)
    if step_work(model.network, training.batch_size) >= PARALLEL_WORK:
        return []
    if sum(p.size for p in model.parameters()) < compiled.MIN_SIZE:
        return []  # (the update's NumPy passes on one core would write the partner's rows)
    kernels = [layer.kernel for layer in model.network.layers if isinstance(layer, Dense)]
    worth = [k for k in kernels if training.batch_size * k.size >= SPLIT_WORK]
    return [k for k in worth if second_core.splittable(k)]


def second_core_sharing(training: TrainingOptions, model, mode: str = "auto"):
    """``second_core.sharing`` of the weights one ``model`` splits (``second_core_weights``)."""
    shared = second_core_weights(training, model, single_model=True)
    return second_core.sharing(shared, model.parameters().flat_value, mode)
