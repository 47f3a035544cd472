"""What data-parallel training tells the layers of one worker's model, for one step.

A worker (an MPI rank, or a replica in a thread) computes rows ``start:stop`` of a global
batch of ``total`` rows. Two layers need to know: Dropout draws the mask of the whole global
batch and keeps its rows (so every worker's generator advances alike and the masks are one
model's), and BatchNorm takes the statistics of the global batch, summing its per-channel sums
over the workers with ``reduce`` (synchronized batch normalization).

    with sharing(BatchShare(start, stop, total, reduce)):
        loss = model.compute_gradients(xb[start:stop], yb[start:stop], scale)

Outside ``sharing`` (a single model, inference) ``current()`` is None and layers see only their
own input. The share is per thread, as replicas run in threads of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchShare:
    """Rows ``start:stop`` of a global batch of ``total``; ``reduce(v)``: the elementwise sum
    of a float64 vector over all workers, each passing its own (None: no other workers)."""

    start: int
    stop: int
    total: int
    reduce: Callable | None = None


_local = threading.local()


def current() -> BatchShare | None:
    """The share of the batch this thread's model computes now, if it is one worker of many."""
    return getattr(_local, "share", None)


@contextmanager
def sharing(share: BatchShare) -> Iterator[None]:
    """Let this thread's layers see ``share`` within the block."""
    _local.share = share
    try:
        yield
    finally:
        _local.share = None
