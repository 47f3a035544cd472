"""One batch on one stage: the stage's instruction stream (``schedule``) run against its
neighbours through point-to-point MPI messages (``Links``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bptrain.nn import backend
from bptrain.nn.context import BatchShare
from bptrain.train.pipeline import schedule

# Message tags: 3m + kind for micro-batch (or validation batch) m's arrays; OBJECTS + kind for
# the generator state going forward (after the stages before) and back (after all stages).
ACTIVATION, GRADIENT, VALIDATION = 0, 1, 2
OBJECTS, RNG_FORWARD, RNG_BACK = 30000, 0, 1  # (MPI allows tags up to 32767 at least)


class Links:
    """This stage's messages to the stages before and after it on the ``pipe`` communicator
    (its rank there is the stage's index), arrays in the model's ``dtype``. Sends return at
    once (their arrays are kept until ``wait``); receives wait for their message."""

    def __init__(self, pipe, dtype):
        self.pipe, self.dtype = pipe, dtype
        self._sent: list = []  # (request, array) of sends not yet known complete

    def send(self, array, to: int, kind: int, micro: int = 0) -> None:
        # a copy: the layer may reuse its output buffer before the message has left
        array = np.array(backend.to_numpy(array), dtype=self.dtype, order="C", copy=True)
        self._sent.append((self.pipe.Isend(array, dest=to, tag=3 * micro + kind), array))

    def recv(self, shape: tuple, source: int, kind: int, micro: int = 0) -> np.ndarray:
        array = np.empty(shape, dtype=self.dtype)
        self.pipe.Recv(array, source=source, tag=3 * micro + kind)
        return array

    def send_object(self, obj, to: int, kind: int) -> None:
        """Send a small Python object (pickled)."""
        self._sent.append((self.pipe.isend(obj, dest=to, tag=OBJECTS + kind), None))

    def recv_object(self, source: int, kind: int):
        return self.pipe.recv(source=source, tag=OBJECTS + kind)

    def wait(self) -> None:
        """Wait until every send has completed."""
        for request, _ in self._sent:
            request.wait()
        self._sent.clear()


@dataclass(frozen=True)
class Batch:
    """This replica's rows of a batch of ``total`` rows (``x``, ``y``: the whole batch) as
    micro-batches ``pieces`` ((start, stop) rows), each row weighing ``scale`` of the batch
    loss; ``reduce``: BatchNorm's sum over the replicas of this stage (None: one replica)."""

    x: object
    y: object
    pieces: list
    total: int
    scale: float
    reduce: Callable | None = None


class Step:
    """``batch`` on ``stage``: its instruction stream run against the neighbours (``links``).
    ``rng``: the dropout generator state this stage starts from (None: received from the
    stage before). The state after this stage's draws goes forward with the first
    activation; the state after the last stage's (``rng_final``, where every stage continues
    from) comes back with the first gradient."""

    def __init__(self, stage, links: Links, batch: Batch, metrics, rng):
        self.stage, self.links, self.batch = stage, links, batch
        self.xb, self.yb, self.pieces = batch.x, batch.y, batch.pieces
        self.metrics = metrics
        self.rng, self.rng_after, self.rng_final = rng, None, None
        self.told = False  # whether rng_final went to the stage before
        self.inputs: dict = {}  # micro-batch -> its input, kept until its backward
        self.outbox: dict = {}  # micro-batch -> output or input gradient to send
        self.grads: dict = {}  # micro-batch -> gradient of its output
        self.loss, self.sums = 0.0, metrics.zeros()
        self.busy = 0.0  # seconds in forward and backward passes

    def run(self, ops: list[schedule.Op]) -> None:
        """Run the stage's instruction stream for this batch."""
        for op in ops:
            getattr(self, op.kind)(op.micro)

    def share(self, m: int) -> BatchShare:
        start, stop = self.pieces[m]
        return BatchShare(start, stop, self.batch.total, self.batch.reduce)

    def recv_activation(self, m: int) -> None:
        if self.rng is None:
            self.rng = self.links.recv_object(self.stage.index - 1, RNG_FORWARD)
        start, stop = self.pieces[m]
        shape = (stop - start, *self.stage.network.input_shape)
        self.inputs[m] = backend.asarray(
            self.links.recv(shape, self.stage.index - 1, ACTIVATION, m)
        )

    def forward(self, m: int) -> None:
        stage, (start, stop) = self.stage, self.pieces[m]
        if stage.first:
            self.inputs[m] = self.xb[start:stop]
        began = time.perf_counter()
        out = stage.forward(m, self.inputs[m], self.share(m), self.rng)
        if stage.last:
            value, self.grads[m] = stage.loss_gradient(out, self.yb[start:stop], self.weight(m))
            self.loss += value
            self.sums += self.metrics.batch(out, self.yb[start:stop])
        else:
            self.outbox[m] = out
        self.busy += time.perf_counter() - began
        if self.rng_after is None:  # the first forward: the state after this stage's draws
            self.rng_after = stage.rng_state()
            if stage.last:
                self.rng_final = self.rng_after
            else:
                self.links.send_object(self.rng_after, stage.index + 1, RNG_FORWARD)

    def send_activation(self, m: int) -> None:
        self.links.send(self.outbox.pop(m), self.stage.index + 1, ACTIVATION, m)

    def recv_grad(self, m: int) -> None:
        if self.rng_final is None:
            self.rng_final = self.links.recv_object(self.stage.index + 1, RNG_BACK)
        start, stop = self.pieces[m]
        shape = (stop - start, *self.stage.network.output_shape)
        self.grads[m] = backend.asarray(self.links.recv(shape, self.stage.index + 1, GRADIENT, m))

    def backward(self, m: int) -> None:
        began = time.perf_counter()
        dx = self.stage.backward(m, self.inputs.pop(m), self.grads.pop(m), self.share(m), self.rng)
        self.busy += time.perf_counter() - began
        if not self.stage.first:
            self.outbox[m] = dx

    def send_grad(self, m: int) -> None:
        if not self.told:  # the first gradient sent carries it
            self.links.send_object(self.rng_final, self.stage.index - 1, RNG_BACK)
            self.told = True
        self.links.send(self.outbox.pop(m), self.stage.index - 1, GRADIENT, m)

    def weight(self, m: int) -> float:
        start, stop = self.pieces[m]
        return self.batch.scale * (stop - start)
