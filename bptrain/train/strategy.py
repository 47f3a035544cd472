"""How the work of a training step is shared: the strategy the ``Trainer`` calls at named
points, so one loop trains a single model, thread replicas and MPI ranks alike.

A strategy has:

- ``leader``: whether this process writes the run's files (metrics.csv, checkpoints, plots).
- ``compute_gradients(xb, yb, metrics)``: this worker's part of the batch gradient, in the
  model's parameters, and its (loss, training-metric sums). A worker that computes rows of a
  larger batch does so inside ``bptrain.nn.context.sharing``, which tells its Dropout and
  BatchNorm layers (the one place that context is set and cleared).
- ``reduce(loss, sums)``: the batch's gradient summed over the workers, in the model's
  parameters, and its total (loss, sums).
- ``validate(x, y, batch_size)``: (loss, outputs) of the whole validation set, on every worker.
- ``agreed_stop(stop)``: the stop flag the loop acts on, the same on every worker (a signal
  caught by one MPI rank stops all after the same step).
- ``running()``: a context around the epochs (worker threads live in it).
- ``model_state()``: (weights, optimizer state, generator state) of the whole model, as a
  checkpoint holds them, on the leader; every worker calls it at the same point (pipeline
  stages gather theirs there). ``load_model_state(...)`` gives each worker its part of them,
  and ``load_weights(weights)`` its part of the weights alone (``restore_best``).

``SingleProcess`` is the plain step; ``ThreadReplicas`` (``bptrain.train.replicas``) and
``MPIRanks`` (``bptrain.train.data_parallel``) split each batch; ``PipelineRanks``
(``bptrain.train.pipeline``) splits the model's layers.
"""

from __future__ import annotations

import contextlib

import numpy as np

from bptrain.train.metrics import RunningMetrics
from bptrain.train.signals import StopFlag


class SingleProcess:
    """One model in this process computes every batch whole."""

    leader = True

    def __init__(self, model):
        self.model = model

    def compute_gradients(self, xb, yb, metrics: RunningMetrics) -> tuple[float, np.ndarray]:
        loss = self.model.compute_gradients(xb, yb)
        return loss, metrics.batch(self.model.last_outputs, yb)

    def reduce(self, loss: float, sums: np.ndarray) -> tuple[float, np.ndarray]:
        return loss, sums

    def validate(self, x, y, batch_size: int) -> tuple[float, np.ndarray]:
        return self.model.evaluate(x, y, batch_size)

    def agreed_stop(self, stop: StopFlag) -> StopFlag:
        return stop

    def running(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def model_state(self) -> tuple[dict, dict, dict]:
        model = self.model
        return model.network.weights(), model.optimizer.state(), model.network.rng_state()

    def load_weights(self, weights: dict) -> None:
        """The whole model's ``weights`` (a checkpoint's), each worker taking its part."""
        self.model.network.load_weights(weights)

    def load_model_state(self, weights: dict, optimizer_state: dict, rng: dict) -> None:
        model = self.model
        model.network.load_weights(weights)
        model.optimizer.load_state(optimizer_state, model.parameters())
        model.network.set_rng_state(rng)
