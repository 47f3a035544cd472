"""Gradient accumulation (``training.accumulate: K``): one update from K batches.

A step takes K x ``batch_size`` samples and computes their gradient a ``batch_size`` slice at a
time, each slice's gradient scaled by its share of the step's samples and summed, so the update
equals that of one batch K times larger while only one slice's activations are in memory.
(Dropout masks and BatchNorm statistics are drawn per slice, as in Keras and Lightning, so with
those layers the two differ by their randomness and statistics.)
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend


def accumulated_gradients(
    model, x, y, slice_size: int, weights=None, metrics=None
) -> tuple[float, np.ndarray | None]:
    """(loss of the batch (x, y), its training-metric sums or None), with the batch's gradient
    in the model's parameters, computed ``slice_size`` rows at a time.

    x: (N, ...); y: (N, ...); weights: (N,) sample weights or None; metrics: the run's
    ``RunningMetrics`` (each slice's sums are added) or None.
    """
    n = len(x)
    if n <= slice_size:  # one slice: the model's own gradients, no buffers to add into
        loss = model.compute_gradients(x, y, sample_weight=weights)
        return loss, (metrics.batch(model.last_outputs, y) if metrics is not None else None)
    params = model.parameters()
    flat = getattr(params, "flat_grad", None)
    buffers = [flat] if flat is not None else [p.grad for p in params]
    total = [backend.xp.zeros_like(g) for g in buffers]
    loss, sums = 0.0, (metrics.zeros() if metrics is not None else None)
    for start in range(0, n, slice_size):
        stop = min(start + slice_size, n)
        wb = None if weights is None else weights[start:stop]
        loss += model.compute_gradients(
            x[start:stop], y[start:stop], scale=(stop - start) / n, sample_weight=wb
        )
        for acc, g in zip(total, buffers, strict=True):
            acc += g
        if metrics is not None:
            sums += metrics.batch(model.last_outputs, y[start:stop])
    for acc, g in zip(total, buffers, strict=True):
        g[...] = acc
    return loss, sums
