"""Pooling on NCHW images: MaxPool2D, AvgPool2D and GlobalAvgPool2D.

Each pool gathers its windows (``kernels.pooling``) and reduces them; backward sends each
output gradient back to the pixels it came from. The pools work in the storage order of their
input (``layout``): on a channel-major batch, as a Conv2D returns it, every array is (C, N, ...)
instead of (N, C, ...), and the output and the input gradient are channel-major too.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels.layout import channel_major
from bptrain.nn.kernels.pooling import (
    argmax_hits,
    gather_windows,
    max_of_windows,
    window_gradient,
    window_sizes,
)
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.kernels.windows import Windows, check_padding, pair
from bptrain.nn.layer import Layer


def _image_shape(layer: Layer, input_shape) -> tuple:
    if len(input_shape) != 3:
        raise ValueError(
            f"{type(layer).__name__} expects (channels, height, width) inputs, "
            f"got {tuple(input_shape)}"
        )
    return tuple(input_shape)


class _Pool2D(Layer):
    """Window geometry shared by the pools: ``pool_size``, ``strides`` (default: the pool
    size) and ``padding`` "valid" or "same" (Keras: H' = ceil(H / stride); padded positions
    take no part in a window)."""

    pad_value = 0.0

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        name: str | None = None,
    ):
        super().__init__(name)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = pair(strides if strides is not None else self.pool_size, "strides")
        padding = check_padding(padding)
        if padding not in ("valid", "same"):
            raise ValueError(f"pooling padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self._scratch = Scratch()

    def build(self, input_shape, rng):
        c, h, w = _image_shape(self, input_shape)
        self.geometry = Windows.create((h, w), self.pool_size, self.strides, (1, 1), self.padding)
        return (c, *self.geometry.out_hw)

    def _stored(self, x):
        """x (N, C, H, W) as the pool works on it, (C, N, H, W) if stored so (kept for backward)."""
        self._channel_major = channel_major(x)
        x = self._swapped(x)
        self._x_shape = x.shape
        return x

    def _swapped(self, a):
        """An (N, C, ...) array in the order the pool works in, or back: a view, its own inverse."""
        return a.transpose(1, 0, 2, 3) if self._channel_major else a

    def config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class MaxPool2D(_Pool2D):
    """The maximum of each window. x: (N, C, H, W) -> y: (N, C, H', W').

        windows = im2col(x, padding -inf)     (ph*pw, N*C*H'*W'), one row per window offset
        k = argmax(windows);  y = max(windows)
        backward: dwindows[k] = dy, zero elsewhere;  dx = col2im(dwindows)

    as ``kernels.pooling.max_pool_reference`` writes it, which the tests hold this layer to.
    The layer keeps k as a small integer per output (ties go to the first offset, as in
    PyTorch) and runs the same steps on windows gathered offset-major (``kernels.pooling``).
    """

    pad_value = -np.inf

    def forward(self, x, training=False):
        windows = gather_windows(self._stored(x), self.geometry, self._scratch, self.pad_value)
        y, self._argmax = max_of_windows(windows, self._scratch)
        return self._swapped(y)

    def backward(self, dy):
        dy = self._swapped(dy)
        hit = argmax_hits(self._argmax, self.pool_size[0] * self.pool_size[1], self._scratch)
        dx = window_gradient(dy, hit.__getitem__, self.geometry, self._x_shape, self._scratch)
        return self._swapped(dx)


class AvgPool2D(_Pool2D):
    """The mean of each window. x: (N, C, H, W) -> y: (N, C, H', W').

    With "same" padding a window's mean is over its real pixels only (Keras' rule), so each
    output position has its own divisor.
    """

    def _scale(self, dtype):
        """1 / window size: a scalar when all windows are full, else per position (H', W')."""
        if not self.geometry.padded:
            return dtype.type(1.0 / (self.pool_size[0] * self.pool_size[1]))
        return backend.asarray(1.0 / window_sizes(self.geometry), dtype=dtype)

    def forward(self, x, training=False):
        y = gather_windows(self._stored(x), self.geometry, self._scratch, self.pad_value)
        y = y.sum(axis=0)
        y *= self._scale(x.dtype)
        return self._swapped(y)

    def backward(self, dy):
        dy = self._swapped(dy)
        scale = self._scale(dy.dtype)  # the same at every offset
        dx = window_gradient(dy, lambda k: scale, self.geometry, self._x_shape, self._scratch)
        return self._swapped(dx)


class GlobalAvgPool2D(Layer):
    """The mean over all positions of each channel. x: (N, C, H, W) -> y: (N, C)."""

    def build(self, input_shape, rng):
        return (_image_shape(self, input_shape)[0],)

    def forward(self, x, training=False):
        self._x_shape, self._channel_major = x.shape, channel_major(x)
        return x.reshape(*x.shape[:2], -1).mean(axis=2)

    def backward(self, dy):
        """dx in the storage order of the input (see ``layout``): the Conv2D below then takes
        it without a transposed copy."""
        n, c, h, w = self._x_shape
        g = dy * dy.dtype.type(1.0 / (h * w))  # (N, C)
        if self._channel_major:
            dx = backend.xp.empty((c, n, h, w), dtype=dy.dtype)
            dx[...] = g.T[:, :, None, None]
            return dx.transpose(1, 0, 2, 3)
        return backend.xp.broadcast_to(g[:, :, None, None], self._x_shape).copy()
