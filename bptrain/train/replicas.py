"""Data parallelism over threads: R replicas of the model in one process, each computing the
gradient of a slice of every batch, summed into the model's gradient before the optimizer step.

NumPy runs one op at a time and parallelises only the GEMMs inside BLAS; the element-wise work
between them (im2col, pooling, activations, the optimizer) runs on one core. Replicas keep every
core busy with all of it: each runs a whole forward and backward pass on its rows with one BLAS
thread, while NumPy releases the GIL inside its loops. Measured on 2 cores (bench/bench_cnn.py,
full epochs): the MNIST CNN at batch 64 takes 8.2-8.9 ms per step in one model and 7.4-7.6 ms in
two replicas. A recurrent layer loses (the row-by-row MNIST LSTM: 5.6 ms in two replicas against
4.5 ms as one model, alternating), since its many small NumPy calls each hold the GIL for most
of their time.

The result equals training one model to float32 round-off (the slices' sums are added in
another order), as with MPI ranks (``data_parallel``), and is deterministic for a given R:

- Replica 0 is the model itself; the others are built from the same config. Every replica's
  parameter values are views of the model's flat value buffer, so the optimizer's in-place
  update is seen by all; each replica has its own gradients, layer caches and scratch arrays.
- A batch of n rows is split into k = min(R, n) contiguous slices, rows ``[n*i/k, n*(i+1)/k)``;
  replica i computes the gradient of its slice's share of the batch loss (``scale`` = slice
  size / n), so the sum over replicas is the batch gradient. The sums are added into the
  model's gradient in replica order, on the main thread.
- Each replica computes inside ``bptrain.nn.context.sharing`` with its rows and a reducer:
  BatchNorm uses the whole batch's statistics, the reducer summing the replicas' per-channel
  sums behind a barrier, every replica adding them in replica order (so all get the same bits);
  Dropout draws the whole batch's mask and keeps the slice's rows. Before each step every
  replica's generator is set to the model's state, so all draw the same numbers and the model's
  generator (the one checkpoints save) advances exactly as a single model's does.
- Validation deals whole batches to the replicas in turn (``ThreadReplicas.validate``): each
  batch's loss and outputs are the model's, added in batch order, so it is bit for bit the
  single model's.
- An exception in any replica breaks the barrier (no thread waits forever) and is raised in the
  main thread, the lowest-numbered replica's own error first.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from bptrain.nn.context import BatchShare, sharing
from bptrain.train.metrics import RunningMetrics
from bptrain.train.strategy import SingleProcess

# How long a thread that holds the GIL may run Python code while another waits for it (Python's
# default is 5 ms). A replica that comes back from a GIL-free NumPy or BLAS call waits for the
# other's Python code to let go; with 0.2 ms the MNIST CNN's step in two replicas took 10.3-10.6
# ms against 11.0-11.9 with the default (alternating in one process, 2026-12-05).
SWITCH_INTERVAL = 2e-4


class ReplicaSum:
    """Elementwise sums of float64 vectors over the ``k`` replicas taking part in a step (the
    ``reduce`` of each replica's ``BatchShare``; see ``reducer``). Every call is a barrier."""

    def __init__(self, replicas: int):
        self.start(replicas)

    def start(self, k: int) -> None:
        """Before a step in which replicas 0..k-1 take part (call while no replica runs)."""
        self.k = k
        self._barrier = threading.Barrier(k)
        # Two sets of slots, used by turns: a replica can be at most one call ahead of the
        # slowest, since each call waits for all, so a slot is never overwritten while read.
        self._slots = [[None] * k, [None] * k]
        self._calls = [0] * k

    def abort(self) -> None:
        """Release every replica waiting in a sum (they raise BrokenBarrierError)."""
        self._barrier.abort()

    def reducer(self, index: int) -> Callable:
        """The reducer of replica ``index``: ``v -> sum over replicas of their v`` (v is read,
        never written; the result is a new array)."""

        def reduce(v):
            if self.k == 1:
                return v
            slots = self._slots[self._calls[index] & 1]
            self._calls[index] += 1
            slots[index] = v
            self._barrier.wait()
            total = slots[0].copy()
            for other in slots[1:]:
                total += other
            return total

        return reduce


class WorkerThreads:
    """``count`` persistent daemon threads that, with the calling thread, run a step's tasks."""

    def __init__(self, count: int):
        self._inboxes = [queue.SimpleQueue() for _ in range(count)]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(
                target=self._serve, args=(inbox,), name=f"bptrain-replica-{i + 1}", daemon=True
            )
            for i, inbox in enumerate(self._inboxes)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self, inbox: queue.SimpleQueue) -> None:
        while (item := inbox.get()) is not None:
            index, task = item
            try:
                self._done.put((index, task(), None))
            except BaseException as exc:  # handed to the main thread, which raises it
                self._done.put((index, None, exc))

    def run(self, tasks: Sequence[Callable], on_error: Callable[[], None]) -> list:
        """Results of ``tasks`` (at most count + 1): the first runs on this thread, the others
        on the workers. A task that fails calls ``on_error()`` at once, in its own thread (to
        release tasks waiting for it); every task is waited for, and then the error of the
        lowest-numbered failed task is raised, its own error before a BrokenBarrierError (which
        only follows another's)."""

        def guarded(task: Callable) -> Callable:
            def run():
                try:
                    return task()
                except BaseException:
                    on_error()
                    raise

            return run

        for i, task in enumerate(tasks[1:], start=1):
            self._inboxes[i - 1].put((i, guarded(task)))
        results, errors = [None] * len(tasks), [None] * len(tasks)
        try:
            results[0] = guarded(tasks[0])()
        except BaseException as exc:
            errors[0] = exc
        for _ in range(len(tasks) - 1):
            index, results[index], errors[index] = self._done.get()
        raised = [e for e in errors if e is not None]
        if raised:
            own = [e for e in raised if not isinstance(e, threading.BrokenBarrierError)]
            raise (own or raised)[0]
        return results

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)


def share_values(model, replica) -> None:
    """Make ``replica``'s parameter values views of ``model``'s (same layers, same shapes)."""
    own, theirs = model.parameters(), replica.parameters()
    for a, b in zip(own, theirs, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"replica parameter {b.name!r} has shape {b.shape}, not {a.shape}")
        b.value = a.value
    theirs.flat_value = own.flat_value


class ThreadReplicas(SingleProcess):
    """``models`` (built alike; the first is the model trained) computing each batch's gradient
    together, in ``len(models)`` threads: see the module docstring. The caller limits BLAS to
    one thread; the optimizer steps ``models[0]``'s parameters."""

    def __init__(self, models: Sequence):
        super().__init__(models[0])
        self.models = list(models)
        for replica in self.models[1:]:
            share_values(self.model, replica)
        self.sums = ReplicaSum(len(self.models))
        self._workers: WorkerThreads | None = None
        self._taking_part = 1  # replicas that computed the last batch

    def slices(self, n: int) -> list[tuple[int, int]]:
        """The rows (start, stop) of a batch of ``n`` that replicas 0, 1, ... compute."""
        k = min(len(self.models), n)
        return [(n * i // k, n * (i + 1) // k) for i in range(k)]

    def compute_gradients(self, xb, yb, metrics: RunningMetrics) -> tuple[float, np.ndarray]:
        """Each replica's slice of (xb, yb) in a thread of its own; the batch loss and metric
        sums. Each replica keeps its slice's gradient and outputs (``last_outputs``)."""
        n = len(xb)
        slices = self.slices(n)
        self._taking_part = k = len(slices)
        state = self.model.network.rng_state()
        for replica in self.models[1:k]:
            replica.network.set_rng_state(state)
        self.sums.start(k)

        def task(i: int) -> Callable[[], float]:
            start, stop = slices[i]
            share = BatchShare(start, stop, n, self.sums.reducer(i))

            def run() -> float:
                with sharing(share):
                    return self.models[i].compute_gradients(
                        xb[start:stop], yb[start:stop], (stop - start) / n
                    )

            return run

        losses = self._worker_threads().run([task(i) for i in range(k)], on_error=self.sums.abort)
        total = 0.0
        for loss in losses:
            total += float(loss)
        sums = metrics.zeros()
        for model, (start, stop) in zip(self.models, slices, strict=False):
            sums += metrics.batch(model.last_outputs, yb[start:stop])
        return total, sums

    def validate(self, x, y, batch_size: int) -> tuple[float, np.ndarray]:
        """The model's ``evaluate``, its batches dealt to the replicas in turn, each replica in
        its thread. Every batch is evaluated whole by a model with the same weights, and the
        losses are added in batch order, so the result is the single model's, bit for bit
        (a convolutional network's validation took half the time on 2 cores)."""
        starts = list(range(0, len(x), batch_size))
        k = min(len(self.models), len(starts))
        if k <= 1:
            return super().validate(x, y, batch_size)

        def task(i: int) -> Callable[[], list]:
            return lambda: self.models[i].evaluate_batches(x, y, starts[i::k], batch_size)

        parts = self._worker_threads().run([task(i) for i in range(k)], on_error=lambda: None)
        batches = [None] * len(starts)
        for i, part in enumerate(parts):
            batches[i::k] = part
        return self.model.summed(batches, len(x))

    def reduce(self, loss: float, sums: np.ndarray) -> tuple[float, np.ndarray]:
        """The replicas' gradients added into the model's, in replica order."""
        grad = self.model.parameters().flat_grad
        for replica in self.models[1 : self._taking_part]:
            grad += replica.parameters().flat_grad
        return loss, sums

    def _worker_threads(self) -> WorkerThreads:
        """The replicas' threads, started with the first step or validation."""
        if self._workers is None:
            self._workers = WorkerThreads(len(self.models) - 1)
        return self._workers

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Worker threads start with the first step and stop at the end (a later step starts
        new ones). Meanwhile the interpreter's switch interval is ``SWITCH_INTERVAL``."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
        try:
            yield
        finally:
            sys.setswitchinterval(interval)
            if self._workers is not None:
                self._workers.close()
                self._workers = None
