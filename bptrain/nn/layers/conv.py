"""Conv2D: 2-D convolution on NCHW images as im2col plus one GEMM per pass."""

from __future__ import annotations

from bptrain.nn import activations, backend
from bptrain.nn.layer import Layer
from bptrain.nn.layers.im2col import Windows, check_padding, col2im, im2col, pair


class Conv2D(Layer):
    """``y = activation(conv(x, kernel) + bias)`` (cross-correlation, as in every framework).

    x: (N, C, H, W) -> y: (N, filters, H', W'); kernel (filters, C, kh, kw) (PyTorch's layout,
    whose (filters, C*kh*kw) matrix multiplies the (C*kh*kw, N*H'*W') columns of ``im2col``
    directly), bias (filters,). ``padding`` is "valid", "same" (Keras: H' = ceil(H / stride)) or
    an int (or pair) of zeros added on each side.

    Passes, with P = N*H'*W' and K = C*kh*kw:
      forward   z = kernel (F, K) @ cols (K, P), transposed to NCHW with the bias added
      backward  dkernel += dz (F, P) @ cols.T;  dcols = kernel.T @ dz, added back by col2im
    The column buffer is reused from pass to pass (backward writes dcols over it once
    dkernel is done), so a step allocates no large temporaries beyond its outputs.
    """

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
        self._cols = self._out = self._ones = None

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

    def _buffers(self, n: int, c: int, dtype):
        """The im2col buffer (C, kh, kw, N, H', W') and the GEMM-output buffer (F, N*H'*W'),
        kept from pass to pass while the batch shape and dtype stay the same."""
        shape = (c, *self.kernel_size, n, *self.geometry.out_hw)
        if self._cols is None or self._cols.shape != shape or self._cols.dtype != dtype:
            xp = backend.xp
            # Padded entries are never written by im2col, so they must start (and stay) zero.
            self._cols = xp.zeros(shape, dtype=dtype)
            positions = n * self.geometry.out_hw[0] * self.geometry.out_hw[1]
            self._out = xp.empty((self.filters, positions), dtype=dtype)
            self._ones = xp.ones(positions, dtype=dtype)
        return self._cols, self._out

    def forward(self, x, training=False, activate=True):
        xp = backend.xp
        n, c = x.shape[:2]
        f, (ho, wo) = self.filters, self.geometry.out_hw
        cols, zt = self._buffers(n, c, x.dtype)
        cols = im2col(x, self.geometry, out=cols)
        xp.matmul(self.kernel.value.reshape(f, -1), cols, out=zt)
        if self.use_bias:
            zt += self.bias.value[:, None]  # cheaper here than after the transpose
        z = xp.empty((n, f, ho, wo), dtype=x.dtype)
        z[...] = zt.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)
        self._x_shape = x.shape
        return self._activate(z, activate)

    def backward(self, dy):
        xp = backend.xp
        dz = self._activation_backward(dy)
        f, k = self.filters, self.kernel.value[0].size
        cols = self._cols.reshape(k, -1)
        dzt = self._out  # the forward's GEMM output is used up: reuse it for dz as (F, P)
        dzt.reshape(f, dz.shape[0], -1)[...] = dz.reshape(dz.shape[0], f, -1).transpose(1, 0, 2)
        dkernel = self.kernel.grad.reshape(f, k)
        # The same product either way round; OpenBLAS is faster with the longer side as rows.
        if k >= f:
            dkernel += (cols @ dzt.T).T
        else:
            dkernel += dzt @ cols.T
        if self.use_bias:
            self.bias.grad += dzt @ self._ones  # a GEMV: faster than dzt.sum(axis=1)
        # dcols may overwrite the columns, now used up, unless padded entries must stay zero
        dcols = xp.matmul(
            self.kernel.value.reshape(f, k).T, dzt, out=None if self.geometry.padded else cols
        )
        return col2im(dcols, self._x_shape, self.geometry)

    def config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation.name,
        }
