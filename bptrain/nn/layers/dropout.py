"""Dropout."""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend, context
from bptrain.nn.layer import Layer


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale the
    rest by 1/(1-rate), so inference is the identity. Masks come from the model's seeded
    generator, so a run is reproducible and resumable.

    In data-parallel training (``bptrain.nn.context``) the input is rows start:stop of a
    global batch of ``total`` rows. The mask is then drawn for the whole batch and sliced, so
    every worker's generator advances alike and the masks are exactly those of a single worker.
    """

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def build(self, input_shape, rng):
        self.rng = rng
        return tuple(input_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        shape, rows = x.shape, slice(None)
        share = context.current()
        if share is not None:
            shape, rows = (share.total, *x.shape[1:]), slice(share.start, share.stop)
        keep = self.rng.random(shape, dtype=np.float32)[rows] >= self.rate
        scale = x.dtype.type(1.0 / (1.0 - self.rate))
        self._mask = backend.xp.multiply(backend.asarray(keep), scale, dtype=x.dtype)
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def config(self):
        return {"rate": self.rate}
