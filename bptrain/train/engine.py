"""Which strategy trains a run (``bptrain.train.strategy``): MPI ranks under mpiexec, thread
replicas for ``training.replicas`` > 1, else the single model; and the line saying so."""

from __future__ import annotations

import dataclasses

from bptrain.config import Config, build_model
from bptrain.data import Dataset
from bptrain.errors import ConfigError
from bptrain.train import pipeline
from bptrain.train.data_parallel import MPIRanks
from bptrain.train.replicas import ThreadReplicas
from bptrain.train.strategy import SingleProcess


def for_world(config: Config, world) -> tuple[Config, str]:
    """(the config a run trains with on ``world``, a line on what changed or ""): on MPI
    ranks, thread replicas give way (``ranks_replace_replicas``)."""
    if world.size > 1 and config.training.replicas > 1:
        return ranks_replace_replicas(config, world.size)
    options = config.training.pipeline
    if world.size == 1 and options is not None and options.stages > 1:
        return config, (
            f"training.pipeline: one process trains all {options.stages} stages' layers as "
            f"one model (--processes {options.stages} runs the pipeline)"
        )
    return config, ""


def check_single_model(config: Config, world) -> None:
    """Sample weights and gradient accumulation train a single model for now: refused with
    thread replicas or MPI ranks (their strategies split each batch their own way)."""
    t = config.training
    if pipeline.active(config, world):
        pipeline.check(config, world)
    if world.size == 1 and t.replicas == 1:
        return
    if t.class_weight or config.data.get("weight_column") is not None:
        raise ConfigError(
            "training.class_weight and data.weight_column train a single model for now: not "
            "with training.replicas or MPI ranks"
        )
    if t.accumulate > 1:
        raise ConfigError(
            "training.accumulate trains a single model for now: not with training.replicas or "
            "MPI ranks (which split each batch already)"
        )


def ranks_replace_replicas(config: Config, ranks: int) -> tuple[Config, str]:
    """(config with ``training.replicas: 1``, the line saying so) for a run on ``ranks`` MPI
    ranks: the ranks split each batch instead of the thread replicas (the two do not combine),
    so ``bptrain fit configs/mnist_cnn.yaml --processes 2`` runs as written. The run stores
    ``replicas: 1``, what it trained with; the result is one model's to float32 round-off, as
    for either alone."""
    replicas = config.training.replicas
    work = "run the pipeline's stages" if config.training.pipeline else "split each batch"
    line = (
        f"training.replicas: 1 instead of {replicas}: the {ranks} MPI ranks {work} "
        "(ranks and thread replicas do not combine)"
    )
    return config.replace(training=dataclasses.replace(config.training, replicas=1)), line


def pick(config: Config, data: Dataset, model, world, note: str = "") -> tuple:
    """(strategy, the summary's words on it) for training ``model`` as ``config`` says on
    ``world``; ``note``: a line from ``for_world``. The strategy's ``model`` is the one the
    trainer trains on this process (a pipeline rank's stage)."""
    note = f"\n{note}" if note else ""
    if pipeline.active(config, world):
        strategy, words = pipeline.strategy(config, model, world)
        return strategy, words + note
    if world.size > 1:
        words = f" per rank; data-parallel on {world.size} MPI ranks"
        return MPIRanks(model, world), words + note
    replicas = config.training.replicas
    if replicas > 1:
        copies = [build_model(config, data.input_shape) for _ in range(replicas - 1)]
        words = f" per replica; data-parallel on {replicas} replicas (threads)"
        return ThreadReplicas([model, *copies]), words + note
    return SingleProcess(model), note
