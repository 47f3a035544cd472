"""Batch statistics per channel, on one worker's batch or (synchronized batch normalization)
on the global batch of all data-parallel workers.

Shapes: x (N, C) or (N, C, H, W); ``axes`` every axis but the channel axis 1; per-channel
results (C,). ``reducer`` (or None): a callable that takes a float64 vector and returns its
elementwise sum over all workers, each worker passing its own.
"""

from __future__ import annotations

from bptrain.nn import backend


def batch_moments(x, axes: tuple, reducer=None):
    """(mean, x - mean, biased variance, count) per channel. With a ``reducer`` the global
    batch's, in two rounds like the local code (the mean, then the squares around it, which
    stays accurate when the mean is large); count is the number of values per channel."""
    cshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if reducer is None:
        mean = x.mean(axis=axes)
        centered = x - mean.reshape(cshape)
        return mean, centered, (centered * centered).mean(axis=axes), x.size // x.shape[1]
    xp, c = backend.xp, x.shape[1]
    sums = xp.empty(c + 1, dtype=xp.float64)
    sums[:c] = x.sum(axis=axes)
    sums[c] = x.size // c
    sums = reducer(sums)
    count = sums[c]
    mean = (sums[:c] / count).astype(x.dtype)
    centered = x - mean.reshape(cshape)
    squares = reducer((centered * centered).sum(axis=axes).astype(xp.float64))
    return mean, centered, (squares / count).astype(x.dtype), count


def batch_means(sums: list, count, reducer=None) -> list:
    """Per-channel sums (each (C,)) divided by ``count``: this batch's, or with a ``reducer``
    summed over all workers first (``count`` then being the global one)."""
    if reducer is None:
        return [s / s.dtype.type(count) for s in sums]
    xp, dtype = backend.xp, sums[0].dtype
    total = reducer(xp.concatenate(sums).astype(xp.float64)) / count
    return [part.astype(dtype) for part in xp.split(total, len(sums))]
