"""The ``PipelineRanks`` strategy: this rank's stage of a pipeline of S stages, in one of D
data-parallel replicas (S x D MPI ranks; rank = replica x S + stage)."""

from __future__ import annotations

import numpy as np

from bptrain.config.sections import PipelineOptions
from bptrain.train.callbacks import gradients_finite
from bptrain.train.data_parallel import MPIRanks, batch_slice, sum_gradients
from bptrain.train.metrics import RunningMetrics
from bptrain.train.pipeline.schedule import SCHEDULES, micro_slices
from bptrain.train.pipeline.stage import Stage
from bptrain.train.pipeline.step import Batch, Links, Step
from bptrain.train.pipeline.validate import validate_stage


class PipelineRanks(MPIRanks):
    """Trains ``stage`` (this rank's) with the other ranks of ``world`` as ``options`` say:
    see the package docstring."""

    def __init__(self, stage: Stage, world, options: PipelineOptions):
        super().__init__(stage, world)
        self.stage, count = stage, stage.count
        self.replica, self.replicas = world.rank // count, world.size // count
        self.pipe = world.comm.Split(color=self.replica, key=stage.index)
        self.dp = world.comm.Split(color=stage.index, key=self.replica)
        self.links = Links(self.pipe, stage.network.dtype)
        self.schedule, self.micro_batches = SCHEDULES[options.schedule], options.micro_batches
        self.busy_seconds = 0.0  # in forward and backward passes (the bench reads it)

    def compute_gradients(self, xb, yb, metrics: RunningMetrics) -> tuple[float, np.ndarray]:
        """This stage's part of the gradient of this replica's rows of the batch, computed
        micro-batch by micro-batch in the schedule's order; the loss and training-metric sums
        of those rows (on the last stage; 0 elsewhere) plus this stage's weight penalties."""
        stage, n = self.stage, len(xb)
        start, stop, share = batch_slice(n, self.replicas, self.replica)
        pieces = micro_slices(start, stop, self.micro_batches)
        rng = stage.rng_state() if stage.first else None
        reduce = self.sum_over_replicas if self.replicas > 1 else None
        batch = Batch(xb, yb, pieces, n, share / (stop - start), reduce)
        step = Step(stage, self.links, batch, metrics, rng)
        stage.zero_grad()
        step.run(self.schedule(stage.index, stage.count, len(pieces)))
        self.links.wait()
        stage.set_rng_state(step.rng_final)  # every stage continues after the last's draws
        self.busy_seconds += step.busy
        counted = n >= self.replicas or self.replica == 0  # (else every replica has them all)
        return step.loss + stage.penalty(share), (step.sums if counted else metrics.zeros())

    def reduce(self, loss: float, sums: np.ndarray) -> tuple[float, np.ndarray]:
        """Sum each stage's gradients over its replicas; sum the losses, penalties and metric
        sums over all ranks. The loss is NaN on every rank when any stage's gradient is not
        finite, so that all stop at the same step."""
        params = self.stage.parameters()
        if self.replicas > 1:
            sum_gradients(params, self.sum_over_replicas)
        broken = 0.0 if gradients_finite(params) else 1.0
        totals = self.agree(np.concatenate([[loss, broken], sums]))
        return (float(totals[0]) if totals[1] == 0 else float("nan")), totals[2:]

    def sum_over_replicas(self, a: np.ndarray) -> np.ndarray:
        """``a`` summed in place over this stage's replicas; returns ``a``."""
        self.dp.Allreduce(self.world.MPI.IN_PLACE, a)
        return a

    def validate(self, x, y, batch_size: int) -> tuple[float, np.ndarray]:
        """Every replica scores the whole validation set through its pipeline; every rank
        gets the last stage's result."""
        return validate_stage(self.stage, self.links, self.pipe, x, y, batch_size)

    # -- checkpoints ---------------------------------------------------------------------------
    def model_state(self) -> tuple[dict, dict, dict]:
        """The stages of replica 0 gathered on the leader (other ranks get their own)."""
        stage = self.stage
        own = (stage.weights(), stage.optimizer.state(), stage.rng_state())
        if self.replica != 0:
            return own
        parts = self.pipe.gather(own[:2], root=0)
        if not self.leader:
            return own
        weights = {k: v for w, _ in parts for k, v in w.items()}
        slots = {}
        for name in parts[0][1]["slots"]:
            slots[name] = np.concatenate([opt["slots"][name] for _, opt in parts])
        return weights, {**own[1], "slots": slots}, own[2]

    def load_weights(self, weights: dict) -> None:
        self.stage.load_weights(weights)

    def load_model_state(self, weights: dict, optimizer_state: dict, rng: dict) -> None:
        """This stage's weights and its piece of each optimizer slot."""
        stage = self.stage
        stage.load_weights(weights)
        params = stage.parameters()
        size = sum(p.size for p in params)
        own = {
            k: v[stage.offset : stage.offset + size] for k, v in optimizer_state["slots"].items()
        }
        stage.optimizer.load_state({**optimizer_state, "slots": own}, params)
        stage.set_rng_state(rng)
