"""Pipeline model parallelism on MPI ranks (``training.pipeline``): the model's layers split
into S consecutive stages, one per rank, and each batch cut into M micro-batches that flow
through them; with S x D ranks, D data-parallel replicas of the whole pipeline.

    training: {pipeline: {stages: 2, micro_batches: 4, schedule: 1f1b}}
    bptrain fit cfg.yaml --processes 2        # or mpiexec -n 2 python -m mpi4py -m bptrain fit

- Stages (``split``): where ``stage_boundaries`` says, else balanced by parameter count. Every
  rank draws the whole model's initial weights, as one process does, and keeps only its
  stage's layers, parameters and optimizer state (``stage``).
- A step (``step``, ``schedule``): each rank runs its stage's instruction stream (GPipe or
  1F1B); activations go forward and gradients back as point-to-point messages per
  micro-batch. Micro-batch m of a batch of n rows has its share rows_m / n of the batch loss,
  so the gradients summed over micro-batches are the batch's, and each stage updates its
  parameters once per batch. Replicas take rows of each batch as data-parallel ranks do and
  sum their stage's gradients with one Allreduce.
- Exactness: the loss, every gradient and the updated weights equal one process's up to
  round-off (tested to 1e-10 in float64). Dropout is exact as well: each micro-batch draws the
  masks of the whole batch and keeps its rows, and the generator state passes from stage to
  stage, so every mask is one process's. BatchNorm is exact with one micro-batch (summing its
  statistics over the replicas, if any, as data-parallel ranks do); with M > 1 it normalises
  each micro-batch with that micro-batch's statistics (as GPipe does) and moves its running
  statistics once per micro-batch, so the result differs from one process's but is the same
  for a given S and M on every run.
- Checkpoints: the leader gathers the stages into the file one process writes (the same
  arrays and names), so ``eval``, ``predict`` and ``--resume`` work unchanged, and a run
  resumes on any number of stages, one process included.
- Failures: as data-parallel ranks (``bptrain.train.distributed``): an error every rank
  shares (divergence, Ctrl-C, agreed in the step's Allreduce) stops all after the same step;
  one rank's own error aborts the job, so no rank waits for a message forever.
"""

from __future__ import annotations

from bptrain.config import Config
from bptrain.errors import ConfigError
from bptrain.train.pipeline.ranks import PipelineRanks
from bptrain.train.pipeline.split import describe, layer_sizes, stage_boundaries
from bptrain.train.pipeline.stage import stage_of


def active(config: Config, world) -> bool:
    """Whether ``config`` trains as a pipeline on ``world`` (more than one process)."""
    return config.training.pipeline is not None and world.size > 1


def check(config: Config, world) -> None:
    """Refuse what a pipeline on ``world`` cannot train."""
    options = config.training.pipeline
    if world.size % options.stages:
        raise ConfigError(
            f"training.pipeline.stages: {options.stages} stages need a multiple of "
            f"{options.stages} processes (stages x data-parallel replicas), not {world.size}"
        )
    if config.optimizer.get("global_clipnorm") is not None:
        raise ConfigError(
            "optimizer.global_clipnorm needs every gradient in one place: not with "
            "training.pipeline (use clipnorm, per parameter)"
        )


def strategy(config: Config, model, world) -> tuple[PipelineRanks, str]:
    """(this rank's strategy, the summary's words on it) for ``model`` (built whole)."""
    options = config.training.pipeline
    bounds = stage_boundaries(options, layer_sizes(model.network))
    replicas = world.size // options.stages
    stage = stage_of(model, bounds, world.rank % options.stages, replicas)
    micro = options.micro_batches
    words = (
        f" per rank; pipeline of {options.stages} stages ({options.schedule}, {micro} "
        f"micro-batch{'es' if micro > 1 else ''})"
    )
    if replicas > 1:
        words += f" x {replicas} data-parallel replicas"
    return PipelineRanks(stage, world, options), words + f" on {world.size} MPI ranks"


def config_lines(config: Config, model) -> list[str]:
    """The lines on each stage's ranks, layers and parameters (``model`` built whole), for a
    pipeline of ``training.pipeline.stages`` ranks."""
    options = config.training.pipeline
    network = model.network
    return describe(network, stage_boundaries(options, layer_sizes(network)))
