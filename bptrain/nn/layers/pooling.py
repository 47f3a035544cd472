"""Pooling on NCHW images: MaxPool2D, AvgPool2D and GlobalAvgPool2D.

A windowed pool first gathers its windows, offset-major, into a reused buffer
(ph, pw, N, C, H', W'): one strided copy per pool offset (``im2col.gather``; when the windows
tile the input, stride == pool size and no padding, the copies read one reshape view
(N, C, H', ph, W', pw) of the input). Every later operation then runs on whole contiguous
(N, C, H', W') arrays, which NumPy does at full speed, whereas operating on the stride-2 views
directly (1.3x), or reducing over the small window axes of the reshape (25x), is slower.
Backward computes each offset's gradient straight into its strided place in dx when windows do
not overlap (``_input_gradient``), else into a buffer that ``im2col.scatter`` adds back.

The pools work in the storage order of their input (``layout``): on a channel-major batch, as a
Conv2D returns it, every array above is (C, N, ...) instead of (N, C, ...), and the output and
the input gradient are channel-major too. A MaxPool2D directly after a Conv2D may instead take
its windows ready-made from the convolution (``takes_windows``, see ``Conv2D.feeds``).
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend
from bptrain.nn.activations import ReLU
from bptrain.nn.layer import Layer
from bptrain.nn.layers.im2col import Windows, check_padding, gather, pair, scatter
from bptrain.nn.layers.layout import channel_major
from bptrain.nn.layers.scratch import Scratch


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
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects (channels, height, width) inputs, "
                f"got {tuple(input_shape)}"
            )
        c, h, w = input_shape
        self.geometry = Windows.create((h, w), self.pool_size, self.strides, (1, 1), self.padding)
        return (c, *self.geometry.out_hw)

    def _stored(self, x):
        """x (N, C, H, W) as the pool works on it: (C, N, H, W) when stored channel-major, else
        x itself; remembers that order, and the shape, for backward."""
        self._channel_major = channel_major(x)
        x = self._swapped(x)
        self._x_shape = x.shape
        return x

    def _swapped(self, a):
        """An (N, C, ...) array in the order the pool works in, or such an array back (a view
        either way: the swap is its own inverse). Backward's operations accept a gradient
        stored in either order."""
        return a.transpose(1, 0, 2, 3) if self._channel_major else a

    def _gather(self, x):
        """x: (N, C, H, W) -> windows (ph*pw, N, C, H', W'), a scratch array whose padded
        entries hold ``pad_value`` (written once). (N and C swap places throughout when the
        pool works channel-major.)"""
        shape = (*self.pool_size, *x.shape[:2], *self.geometry.out_hw)
        windows = self._scratch.get("windows", shape, x.dtype, fill=self.pad_value)
        gather(x, self.geometry, windows)
        return windows.reshape(-1, *shape[2:])

    def _input_gradient(self, dy, factor, x_shape):
        """dx (``x_shape``, as stored) whose pixel at window offset k of every window is
        ``dy * factor(k)`` (an array of dy's shape, or a scalar or per-position (H', W') array),
        added up where windows overlap and zero where no window reaches.

        Windows that do not overlap get each product written straight into its strided place
        in dx. Computing them into a buffer first and copying that into place (``scatter``) is
        slower, and NumPy's contiguous-to-strided copy is erratic: for a 2x2 pool over
        32x32x28x28 float32 it took 1.07 ms against 0.37 ms this way (26x26: 0.35 against 0.32).
        """
        xp, geometry = backend.xp, self.geometry
        pw = self.pool_size[1]
        if geometry.disjoint:
            dx = (xp.empty if geometry.covers else xp.zeros)(x_shape, dtype=dy.dtype)
            for i, j, region, view in geometry.window_views(dx):
                f = factor(i * pw + j)
                xp.multiply(dy[region], f[region] if xp.ndim(f) else f, out=view)
            return dx
        # Overlapping windows: every offset's product in a buffer (the windows' scratch, unless
        # padding values must survive in it), then summed into dx.
        name = "parts" if geometry.padded else "windows"
        parts = self._scratch.get(name, (*self.pool_size, *dy.shape), dy.dtype)
        for k, part in enumerate(parts.reshape(-1, *dy.shape)):
            xp.multiply(dy, factor(k), out=part)
        return scatter(parts, geometry, xp.empty(x_shape, dtype=dy.dtype))

    def config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class MaxPool2D(_Pool2D):
    """The maximum of each window. x: (N, C, H, W) -> y: (N, C, H', W').

    Forward keeps each window's argmax as a small integer, the offset k = i * pw + j (ties go to
    the first offset, as in PyTorch); backward sends each output gradient to that one pixel.

    With ``takes_windows`` (set by ``Sequential`` when the Conv2D before computes its output
    in this pool's window order, ``Conv2D.feeds``), forward takes that layer's windows
    (C, ph*pw, N, H', W') instead of an image and backward returns their gradient in the same
    shape: there is nothing to gather or scatter.
    """

    pad_value = -np.inf
    # The ReLU of the layer before, applied to the pooled output instead (set by
    # ``Sequential._move_relus_past_max_pools``).
    post_activation: ReLU | None = None
    takes_windows: bool = False

    def forward(self, x, training=False):
        xp = backend.xp
        if self.takes_windows:
            self._channel_major = True
            windows = [x[:, k] for k in range(x.shape[1])]
        else:
            windows = self._gather(self._stored(x))
        y = windows[0].copy()
        shape, scratch = y.shape, self._scratch
        idx = scratch.get("argmax", shape, np.min_scalar_type(len(windows)))
        idx.fill(0)
        better = scratch.get("better", shape, bool)
        k_if_better = scratch.get("k_if_better", shape, idx.dtype)
        for k in range(1, len(windows)):
            xp.greater(windows[k], y, out=better)  # strict: an equal later value does not win
            xp.maximum(y, windows[k], out=y)
            # k grows, so "idx = k where better" is a maximum, which (unlike np.where or
            # copyto(where=)) runs at full vector speed.
            xp.multiply(better, idx.dtype.type(k), out=k_if_better)
            xp.maximum(idx, k_if_better, out=idx)
        self._argmax = idx
        if self.post_activation is not None:
            self._pooled = y
            y = self._y = self.post_activation.forward(y)
        return self._swapped(y)

    def backward(self, dy):
        xp = backend.xp
        dy = self._swapped(dy)
        if self.post_activation is not None:
            dy = self.post_activation.backward(dy, self._pooled, self._y)
        idx = self._argmax
        offsets = xp.arange(self.pool_size[0] * self.pool_size[1], dtype=idx.dtype)
        if self.takes_windows:  # (C, ph*pw, N, H', W'), the layout of the windows
            dwindows = xp.empty((idx.shape[0], len(offsets), *idx.shape[1:]), dtype=dy.dtype)
            hit = self._scratch.get("hit", dwindows.shape, bool)
            xp.equal(idx[:, None], offsets.reshape(-1, 1, 1, 1), out=hit)
            xp.multiply(dy[:, None], hit, out=dwindows)
            return dwindows
        hit = self._scratch.get("hit", (len(offsets), *dy.shape), bool)
        xp.equal(idx, offsets.reshape(-1, 1, 1, 1, 1), out=hit)
        return self._swapped(self._input_gradient(dy, hit.__getitem__, self._x_shape))


class AvgPool2D(_Pool2D):
    """The mean of each window. x: (N, C, H, W) -> y: (N, C, H', W').

    With "same" padding a window's mean is over its real pixels only (Keras' rule), so each
    output position has its own divisor, counted once in ``build``.
    """

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        count = np.zeros(self.geometry.out_hw)
        for _, _, orow, ocol, _, _ in self.geometry.offsets():
            count[orow, ocol] += 1
        self._inv_count = 1.0 / count
        return shape

    def _scale(self, dtype):
        """1 / window size: a scalar when all windows are full, else per position (H', W')."""
        if self.geometry.padded:
            return backend.asarray(self._inv_count, dtype=dtype)
        return dtype.type(1.0 / (self.pool_size[0] * self.pool_size[1]))

    def forward(self, x, training=False):
        y = self._gather(self._stored(x)).sum(axis=0)
        y *= self._scale(x.dtype)
        return self._swapped(y)

    def backward(self, dy):
        dy = self._swapped(dy)
        scale = self._scale(dy.dtype)  # the same at every offset
        return self._swapped(self._input_gradient(dy, lambda k: scale, self._x_shape))


class GlobalAvgPool2D(Layer):
    """The mean over all positions of each channel. x: (N, C, H, W) -> y: (N, C)."""

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(
                f"GlobalAvgPool2D expects (channels, height, width) inputs, "
                f"got {tuple(input_shape)}"
            )
        return (input_shape[0],)

    def forward(self, x, training=False):
        self._x_shape, self._channel_major = x.shape, channel_major(x)
        return x.reshape(*x.shape[:2], -1).mean(axis=2)

    def backward(self, dy):
        """dx in the storage order of the input (see ``layout``): the Conv2D below then takes
        it without a transposed copy."""
        n, c, h, w = self._x_shape
        g = dy * dy.dtype.type(1.0 / (h * w))
        if self._channel_major:
            dx = backend.xp.empty((c, n, h, w), dtype=dy.dtype)
            dx[...] = g.T[:, :, None, None]
            return dx.transpose(1, 0, 2, 3)
        dx = backend.xp.empty(self._x_shape, dtype=dy.dtype)
        dx[...] = g[:, :, None, None]
        return dx
