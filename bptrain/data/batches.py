"""Minibatches in an order the trainer chooses."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bptrain.nn import backend


def iterate_minibatches(
    x: np.ndarray, y: np.ndarray, batch_size: int, order: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (x[idx], y[idx]) for consecutive slices idx of ``order``.

    x: (N, ...); y: (N, ...); order: (M,) int64 indices into the first axis (usually a
    permutation of range(N), drawn by the trainer, which owns the RNG so that a resumed run
    sees the same batches). Batches have ``batch_size`` rows except perhaps the last. Each
    batch is a new C-contiguous array, safe to keep. On a GPU (``bptrain.nn.backend``) x, y
    and order are device arrays, and so are the batches.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    xp = backend.xp
    order = xp.asarray(order)
    if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"order must be a 1-D integer array, got {order.dtype} {order.shape}")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield x.take(idx, axis=0), y.take(idx, axis=0)  # (arrays' and MappedImages' own take)
