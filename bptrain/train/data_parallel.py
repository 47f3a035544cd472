"""Data-parallel training on MPI ranks (the ``MPIRanks`` strategy): every rank computes a slice
of each global batch, one Allreduce per step sums the slices' gradients, and every rank applies
the same update to the same weights.

The result equals training in one process with the same global batch size, to float32
round-off, and checkpoints do not depend on the number of ranks:

- Every rank draws the same batch order (it depends on the seed and epoch only) and takes rows
  ``[n*r/N, n*(r+1)/N)`` of each batch of n. It computes the gradient of its slice's part of the
  global batch loss, ``(1/n) * sum of its samples' losses`` (``scale`` = slice size / n), so the
  sum over ranks is the global gradient, uneven last batches included; penalties are scaled
  alike and sum to one penalty. A batch smaller than the number of ranks is computed whole by
  every rank with ``scale`` 1/N (no rank has an empty slice; this stays exact).
- The rank computes inside ``bptrain.nn.context.sharing`` with its rows and an Allreduce:
  BatchNorm uses the global batch's statistics, summing per-channel sums across ranks
  (synchronized batch normalization), forward and backward; Dropout draws the mask of the
  whole global batch from the shared generator and keeps its slice's rows: the masks are
  exactly one process's, and every rank's generator stays in step.
- The logged loss is the global batch loss, and the training metrics' sums of each global batch
  are summed across ranks in the same Allreduce (a batch every rank computes whole is counted
  by the leader alone); validation is split across ranks and the outputs gathered, so every
  rank computes the same metrics row (which early stopping, the learning-rate schedule and the
  divergence checks act on alike).
- A stop signal caught by any rank is agreed on in each step's loss reduction, so all ranks
  stop after the same step. The leader alone writes metrics.csv, checkpoints and plots.
"""

from __future__ import annotations

import signal

import numpy as np

from bptrain.nn.context import BatchShare, sharing
from bptrain.train.metrics import RunningMetrics
from bptrain.train.signals import StopFlag
from bptrain.train.strategy import SingleProcess

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def batch_slice(n: int, size: int, rank: int) -> tuple[int, int, float]:
    """(start, stop, share): the rows of a batch of ``n`` that worker ``rank`` of ``size``
    computes, and their share of the batch (all rows and 1/size when n < size)."""
    if n < size:
        return 0, n, 1.0 / size
    start, stop = n * rank // size, n * (rank + 1) // size
    return start, stop, (stop - start) / n


def sum_gradients(params, allreduce_sum) -> None:
    """Sum the gradients of ``params`` over the workers in place: one ``allreduce_sum`` over
    the flat gradient buffer, or one per parameter without one."""
    if params.flat_grad is not None:
        allreduce_sum(params.flat_grad)
    else:
        for p in params:
            allreduce_sum(p.grad)


class MPIRanks(SingleProcess):
    """This rank's part of training on ``world`` (an MPIWorld): see the module docstring."""

    def __init__(self, model, world):
        super().__init__(model)
        self.world = world
        self.leader = world.leader
        self._caught = StopFlag()  # this rank's signals
        self._agreed = StopFlag()  # the stop flag every rank sees alike

    def slice_of(self, n: int) -> tuple[int, int, float]:
        """(start, stop, share): this rank's rows of a batch of ``n`` and their share of it."""
        return batch_slice(n, self.world.size, self.world.rank)

    def compute_gradients(self, xb, yb, metrics: RunningMetrics) -> tuple[float, np.ndarray]:
        n = len(xb)
        start, stop, share = self.slice_of(n)
        with sharing(BatchShare(start, stop, n, self.world.allreduce_sum)):
            loss = self.model.compute_gradients(xb[start:stop], yb[start:stop], scale=share)
        if n < self.world.size and not self.world.leader:
            return loss, metrics.zeros()  # every rank computed the whole batch
        return loss, metrics.batch(self.model.last_outputs, yb[start:stop])

    def reduce(self, loss: float, sums: np.ndarray) -> tuple[float, np.ndarray]:
        """Sum the ranks' gradients in place, with one Allreduce over the flat gradient buffer,
        and in one more their losses and training-metric sums; agree on stop signals. Returns
        the global batch loss and metric sums."""
        sum_gradients(self.model.parameters(), self.world.allreduce_sum)
        totals = self.agree(np.concatenate([[loss], sums]))
        return float(totals[0]), totals[1:]

    def agree(self, values: np.ndarray) -> np.ndarray:
        """``values`` (a float64 vector) summed over every rank, in one Allreduce that also
        agrees on stop signals: a signal caught by any rank stops all after this step."""
        signals = len(STOP_SIGNALS)
        # how many ranks caught each of STOP_SIGNALS, then the values
        shared = np.empty(signals + len(values))
        shared[:signals] = [self._caught.signum == s for s in STOP_SIGNALS]
        shared[signals:] = values
        self.world.allreduce_sum(shared)
        if self._agreed.signum is None:
            caught = [s for s, n in zip(STOP_SIGNALS, shared[:signals], strict=True) if n]
            self._agreed.signum = int(caught[0]) if caught else None
        return shared[signals:]

    def agreed_stop(self, stop: StopFlag) -> StopFlag:
        self._caught = stop
        return self._agreed

    def validate(self, x, y, batch_size: int) -> tuple[float, np.ndarray]:
        """Each rank scores its part of the validation set; every rank gets the whole result."""
        n, size, rank = len(x), self.world.size, self.world.rank
        start, stop = n * rank // size, n * (rank + 1) // size
        loss, outputs = self.model.evaluate(x[start:stop], y[start:stop], batch_size)
        parts = self.world.allgather((loss * (stop - start) / n, outputs))
        outputs = np.concatenate([out for _, out in parts if len(out)])
        return float(sum(part for part, _ in parts)), outputs
