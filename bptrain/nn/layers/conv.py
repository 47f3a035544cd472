"""Conv2D: 2-D convolution on NCHW images as im2col plus one GEMM per pass."""

from __future__ import annotations

from bptrain.nn import activations, backend
from bptrain.nn.layer import Layer
from bptrain.nn.layers.im2col import (
    Windows,
    check_padding,
    col2im,
    col2im_pooled,
    im2col,
    im2col_pooled,
    pair,
)
from bptrain.nn.layers.layout import as_channel_major
from bptrain.nn.layers.pooling import MaxPool2D
from bptrain.nn.layers.scratch import Scratch


class Conv2D(Layer):
    """``y = activation(conv(x, kernel) + bias)`` (cross-correlation, as in every framework).

    x: (N, C, H, W) -> y: (N, filters, H', W'); kernel (filters, C, kh, kw) (PyTorch's layout,
    whose (filters, C*kh*kw) matrix multiplies the (C*kh*kw, N*H'*W') columns of ``im2col``
    directly), bias (filters,). ``padding`` is "valid", "same" (Keras: H' = ceil(H / stride)) or
    an int (or pair) of zeros added on each side.

    Passes, with P = N*H'*W' and K = C*kh*kw (one GEMM each; see ``im2col`` for the layout):
      forward   z = kernel (F, K) @ cols (K, P) + bias, which is y stored channel-major
      backward  dz as (F, P) (a view of a channel-major dy);  dkernel += dz @ cols.T;
                dbias += dz @ ones;  dcols = kernel.T @ dz, added back into dx by col2im
    Columns and im2col work arrays are scratch kept between calls (backward writes dcols over
    the used-up columns when no padding zeros must survive in them), so a step allocates
    nothing large beyond the arrays it returns. The output and dx are stored channel-major,
    the order the GEMM gives (``layout``). The first trainable layer of a model computes no dx
    (``needs_input_grad``): that saves the dcols GEMM and col2im.

    With ``pool_windows`` (ph, pw), set by ``Sequential`` when ``feeds`` says so, the output is
    the next max pool's windows (F, ph*pw, N, H'/ph, W'/pw) (``im2col.im2col_pooled``).
    """

    pool_windows: tuple[int, int] | None = None

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = "valid",
        dilation: int | tuple[int, int] = 1,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | dict = "glorot_uniform",
        bias_initializer: str | dict = "zeros",
        kernel_regularizer: str | dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if int(filters) < 1:
            raise ValueError(f"Conv2D filters must be positive, got {filters}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.dilation = pair(dilation, "dilation")
        self.padding = check_padding(padding)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self._scratch = Scratch()

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D expects (channels, height, width) inputs, got {input_shape}")
        c, h, w = input_shape
        self.geometry = Windows.create(
            (h, w), self.kernel_size, self.strides, self.dilation, self.padding
        )
        self.kernel = self.add_parameter(
            "kernel",
            (self.filters, c, *self.kernel_size),
            self.kernel_initializer,
            rng,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_parameter("bias", (self.filters,), self.bias_initializer, rng)
        return (self.filters, *self.geometry.out_hw)

    def feeds(self, pool) -> bool:
        """Whether this layer should compute its output directly as the windows of ``pool``,
        the layer after it (``pool_windows``): ``pool`` is a MaxPool2D whose windows tile the
        output, and the columns are smaller than the output (C*kh*kw < filters). Then the
        strided copies run on the smaller array: for the benchmark CNN's first layer (1 -> 32
        channels, 3x3, 2x2 pool, batch 32, one thread) forward and pool take 0.41 ms instead of
        0.56 and their backward 0.51 instead of 0.98. For its second layer (32 -> 64) the
        columns are 4.5x the output and the pool's own gather is cheaper."""
        return (
            isinstance(pool, MaxPool2D)
            and pool.geometry.tiles
            and self.kernel.value[0].size < self.filters
        )

    def forward(self, x, training=False, activate=True):
        xp = backend.xp
        n, c, h, _ = x.shape
        f, (kh, kw), (ho, wo) = self.filters, self.kernel_size, self.geometry.out_hw
        scratch = self._scratch
        # Padded entries are never written by im2col, so they must start (and stay) zero.
        if self.pool_windows is not None:
            ph, pw = self.pool_windows
            hp, wp = ho // ph, wo // pw  # the pooled size: positions no window covers are left out
            cols = scratch.get("cols", (c, kh, kw, ph, pw, n, hp, wp), x.dtype, fill=0)
            cols = im2col_pooled(x, self.geometry, self.pool_windows, out=cols)
            z = xp.empty((f, ph * pw, n, hp, wp), dtype=x.dtype)
        else:
            cols = scratch.get("cols", (c, kh, kw, n, ho, wo), x.dtype, fill=0)
            work = scratch.get("work", (kw, c, n, h, wo), x.dtype, fill=0)
            cols = im2col(x, self.geometry, out=cols, work=work)
            z = xp.empty((f, n, ho, wo), dtype=x.dtype)
        zt = z.reshape(f, -1)
        xp.matmul(self.kernel.value.reshape(f, -1), cols, out=zt)
        if self.use_bias:
            zt += self.bias.value[:, None]
        if self.pool_windows is None:
            z = z.transpose(1, 0, 2, 3)  # (N, F, H', W'), stored channel-major (``layout``)
        self._x_shape = x.shape
        return self._activate(z, activate)

    def backward(self, dy):
        xp = backend.xp
        dz = self._activation_backward(dy)
        f, k = self.filters, self.kernel.value[0].size
        scratch, padded = self._scratch, self.geometry.padded
        if self.pool_windows is not None:
            dzt = dz.reshape(f, -1)  # the pool's windows' gradient, in the columns' order
        else:
            dzt = as_channel_major(dz).reshape(f, -1)  # a view when stored channel-major
        cols = scratch["cols"].reshape(k, -1)
        dkernel = self.kernel.grad.reshape(f, k)
        # The same product either way round; OpenBLAS' AVX-512 kernels are faster (1.4 ms
        # against 1.9 for the 3x3x32 -> 64 layer at batch 64) with the longer side as rows.
        if k >= f:
            dkernel += (cols @ dzt.T).T
        else:
            dkernel += dzt @ cols.T
        if self.use_bias:
            ones = scratch.get("ones", (dzt.shape[1],), dzt.dtype, fill=1)
            self.bias.grad += dzt @ ones  # a GEMV: faster than dzt.sum(axis=1)
        if not self.needs_input_grad:
            return None
        # The columns (and work array) are used up, unless padding must stay zero in them.
        if padded:
            cols = scratch.get("dcols", cols.shape, cols.dtype)
        dcols = xp.matmul(self.kernel.value.reshape(f, k).T, dzt, out=cols)
        if self.pool_windows is not None:
            return col2im_pooled(dcols, self._x_shape, self.geometry, self.pool_windows)
        work = (
            scratch.get("dwork", scratch["work"].shape, cols.dtype) if padded else scratch["work"]
        )
        return col2im(dcols, self._x_shape, self.geometry, work=work)

    def config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation.name,
        }
