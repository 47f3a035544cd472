"""Conv2D: 2-D convolution on NCHW images as im2col plus one GEMM per pass (or, for 3x3
kernels at stride 1, Winograd's F(2x2, 3x3))."""

from __future__ import annotations

from bptrain.nn import activations, backend
from bptrain.nn.kernels import winograd
from bptrain.nn.kernels.conv import conv_forward, conv_input_gradient, conv_weight_gradients
from bptrain.nn.kernels.im2col import col2im, im2col
from bptrain.nn.kernels.layout import as_channel_major
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.kernels.windows import Windows, check_padding, pair
from bptrain.nn.layer import Layer


class Conv2D(Layer):
    """``y = activation(conv(x, kernel) + bias)`` (cross-correlation, as in every framework).

    x: (N, C, H, W) -> y: (N, filters, H', W'); kernel (filters, C, kh, kw) (PyTorch's layout,
    whose (filters, C*kh*kw) matrix multiplies the (C*kh*kw, N*H'*W') columns of ``im2col``
    directly), bias (filters,). ``padding`` is "valid", "same" (Keras: H' = ceil(H / stride)) or
    an int (or pair) of zeros added on each side.

    Passes, with P = N*H'*W' and K = C*kh*kw (one GEMM each, ``kernels.conv``):
      forward   cols (K, P) = im2col(x);  z = kernel (F, K) @ cols + bias;  y = activation(z)
      backward  dz (F, P);  dkernel += dz @ cols.T;  dbias += dz @ ones;
                dcols = kernel.T @ dz;  dx = col2im(dcols)
    The plain version of both is ``kernels.conv.conv_reference``. Columns and im2col work
    arrays are scratch kept between calls (backward writes dcols over the used-up columns when
    no padding zeros must survive in them). The output and dx are stored channel-major, the
    order the GEMM gives (``layout``). The first trainable layer of a model computes no dx
    (``needs_input_grad``): that saves the dcols GEMM and col2im.

    A 3x3 convolution at stride 1, undilated, with at least 16 channels in and out runs the
    same passes as Winograd's minimal filtering F(2x2, 3x3) where that pays (``kernels.winograd``:
    16 multiplies for each 2x2 block of outputs instead of 36, in 16 GEMMs; the same values to
    float round-off, checked against ``conv_reference``); each call decides, and its backward
    follows its forward.
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

    def forward(self, x, training=False, activate=True):
        n, c, h, _ = x.shape
        f, (kh, kw), (ho, wo) = self.filters, self.kernel_size, self.geometry.out_hw
        self._x_shape = x.shape
        self._winograd = winograd.pays(c, f, n, self.geometry)
        if self._winograd:
            xt = x.transpose(1, 0, 2, 3)
            z = winograd.forward(
                xt, self.kernel.value, self._bias_value(), self.geometry, self._scratch
            )
            return self._activate(z.transpose(1, 0, 2, 3), activate)
        # Padded entries are never written by im2col, so they must start (and stay) zero.
        cols = self._scratch.get("cols", (c, kh, kw, n, ho, wo), x.dtype, fill=0)
        work = self._scratch.get("work", (kw, c, n, h, wo), x.dtype, fill=0)
        cols = im2col(x, self.geometry, out=cols, work=work)  # (K, P)
        z = backend.xp.empty((f, n, ho, wo), dtype=x.dtype)
        conv_forward(self.kernel.value, cols, self._bias_value(), out=z.reshape(f, -1))
        return self._activate(z.transpose(1, 0, 2, 3), activate)  # NCHW, stored (F, N, H', W')

    def backward(self, dy):
        dz = as_channel_major(self._activation_backward(dy))  # (F, N, H', W')
        scratch, padded = self._scratch, self.geometry.padded
        dbias = self.bias.grad if self.use_bias else None
        if self._winograd:
            grads = (self.kernel.grad, dbias, self.geometry, scratch, self.needs_input_grad)
            dx = winograd.backward(dz, *grads)
            return None if dx is None else dx.transpose(1, 0, 2, 3)
        dz = dz.reshape(self.filters, -1)  # (F, P)
        cols = scratch["cols"].reshape(self.kernel.value[0].size, -1)
        conv_weight_gradients(dz, cols, self.kernel.grad, dbias, scratch)
        if not self.needs_input_grad:
            return None
        # The columns (and work array) are used up, unless padding must stay zero in them.
        dcols = scratch.get("dcols", cols.shape, cols.dtype) if padded else cols
        conv_input_gradient(dz, self.kernel.value, out=dcols)
        work = scratch.get("dwork", scratch["work"].shape, dz.dtype) if padded else scratch["work"]
        return col2im(dcols, self._x_shape, self.geometry, work=work)

    def _bias_value(self):
        return self.bias.value if self.use_bias else None

    def config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation.name,
        }
