"""Flatten and Reshape: the same values in another shape."""

from __future__ import annotations

import math

from bptrain.nn.layer import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def build(self, input_shape, rng):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._shape)


class Reshape(Layer):
    """(N, *input_shape) -> (N, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape: list[int], name: str | None = None):
        super().__init__(name)
        self.target_shape = tuple(target_shape)

    def build(self, input_shape, rng):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != size or sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(
                f"cannot reshape input of shape {tuple(input_shape)} to {self.target_shape}"
            )
        self.resolved_shape = shape
        return shape

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.reshape(x.shape[0], *self.resolved_shape)

    def backward(self, dy):
        return dy.reshape(self._shape)

    def config(self):
        return {"target_shape": list(self.target_shape)}
