"""Dense, Activation, Flatten, Reshape and Dropout."""

from __future__ import annotations

import math

import numpy as np

from bptrain.nn import activations, backend, context
from bptrain.nn.layer import Layer


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis.

    x: (N, ..., in_features) -> y: (N, ..., units); kernel (in_features, units), bias (units,).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | dict = "glorot_uniform",
        bias_initializer: str | dict = "zeros",
        kernel_regularizer: str | dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if units < 1:
            raise ValueError(f"Dense units must be positive, got {units}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer

    def build(self, input_shape, rng):
        self.kernel = self.add_parameter(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            rng,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_parameter("bias", (self.units,), self.bias_initializer, rng)
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False, activate=True):
        self._x = x
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        z = x2 @ self.kernel.value
        if self.use_bias:
            z += self.bias.value
        if x.ndim != 2:
            z = z.reshape(*x.shape[:-1], self.units)
        return self._activate(z, activate)

    def backward(self, dy):
        dz = self._activation_backward(dy)
        x = self._x
        if dz.ndim != 2:
            dz = dz.reshape(-1, self.units)
            x = x.reshape(-1, x.shape[-1])
        self.kernel.grad += x.T @ dz
        if self.use_bias:
            self.bias.grad += dz.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return (dz @ self.kernel.value.T).reshape(self._x.shape)

    def config(self):
        return {"units": self.units, "activation": self.activation.name}


class Activation(Layer):
    """An activation function as a layer of its own: any shape in, same shape out."""

    def __init__(self, activation: str, name: str | None = None):
        super().__init__(name)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, activate=True):
        return self._activate(x, activate)

    def backward(self, dy):
        return self._activation_backward(dy)

    def config(self):
        return {"activation": self.activation.name}


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
