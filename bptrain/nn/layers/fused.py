"""Fused layers: two neighbours of a model computed as one layer, with the same values.

``fusion.fuse`` makes them from a model's layer list; each holds the layers it joins (their
parameters stay theirs, so weights and checkpoints keep their names) and has its own forward
and backward, checked by finite differences like any layer.
"""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.activations import ReLU
from bptrain.nn.kernels import direct_conv, winograd
from bptrain.nn.kernels.conv import conv_forward, conv_input_gradient, conv_weight_gradients
from bptrain.nn.kernels.im2col import col2im_pooled, im2col_pooled
from bptrain.nn.kernels.layout import as_channel_major, in_storage_order
from bptrain.nn.kernels.pooling import argmax_hits, max_of_windows
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.layer import Composite, Layer
from bptrain.nn.layers.conv import Conv2D


class _Fused(Composite):
    """Two built layers as one; the parameters are theirs."""

    def __init__(self, first: Layer, second: Layer):
        super().__init__(f"{first.name}+{second.name}")
        self._parts = (first, second)
        self.input_shape, self.output_shape = first.input_shape, second.output_shape
        self.dtype, self.built = first.dtype, True

    @property
    def parts(self) -> tuple[Layer, Layer]:
        return self._parts


class ReLUAfterMaxPool(_Fused):
    """``layer`` (with a ReLU activation) then a MaxPool2D, computed as the layer without its
    activation, the pool, then the ReLU: relu(maxpool(z)) == maxpool(relu(z)) bit for bit, as
    ReLU does not decrease, and the pooled array is 4x smaller for 2x2 pools. The gradients
    agree too: a window whose maximum is > 0 has the same argmax in z as in relu(z), and one
    whose maximum is <= 0 gets zero gradient either way.

    A 3x3 Conv2D that runs as Winograd's F(2x2, 3x3) (``kernels.winograd``) before a 2x2 pool
    of stride 2 pools in its output transform: each of its 2x2 output tiles is one pool window,
    so neither the full output nor the pool's gather and scatter are made (``pooled=True``).

    x: the layer's input -> y: the pool's output, (N, C, H', W') as the pool stores it.
    """

    def __init__(self, layer: Layer, pool: Layer):
        super().__init__(layer, pool)
        self.layer, self.pool, self.relu = layer, pool, layer.activation
        self._winograd = False

    def forward(self, x, training=False):
        self._winograd = self._pools_in_winograd(x)
        if self._winograd:
            conv = self.layer
            args = (conv.kernel.value, conv._bias_value(), conv.geometry, conv._scratch)
            pooled = winograd.forward(x.transpose(1, 0, 2, 3), *args, pooled=True)
            pooled = pooled.transpose(1, 0, 2, 3)
        else:
            pooled = self.pool.forward(self.layer.forward(x, training, activate=False), training)
        self._pooled, self._y = pooled, in_storage_order(self.relu.forward, pooled, like=pooled)
        return self._y

    def backward(self, dy):
        dpooled = in_storage_order(self.relu.backward, dy, self._pooled, self._y, like=self._y)
        if self._winograd:
            conv = self.layer
            dbias = conv.bias.grad if conv.use_bias else None
            grads = (conv.kernel.grad, dbias, conv.geometry, conv._scratch, self.needs_input_grad)
            dx = winograd.backward(as_channel_major(dpooled), *grads, pooled=True)
            return None if dx is None else dx.transpose(1, 0, 2, 3)
        self.layer.needs_input_grad = self.needs_input_grad
        return self.layer.backward(self.pool.backward(dpooled))

    def _pools_in_winograd(self, x) -> bool:
        """Whether this batch runs the layer on the Winograd path, its output tiles being the
        pool's windows."""
        return self._winograd_tiles_are_windows() and winograd.pays(
            x.shape[1], self.layer.filters, len(x), self.layer.geometry
        )

    def _winograd_tiles_are_windows(self) -> bool:
        """Whether the layer is a Conv2D that Winograd's algorithm fits, followed by a 2x2 pool
        of stride 2 without padding."""
        layer, pool = self.layer, self.pool
        return (
            isinstance(layer, Conv2D)
            and winograd.fits(layer.kernel.value.shape[1], layer.filters, layer.geometry)
            and pool.pool_size == (2, 2)
            and pool.strides == (2, 2)
            and pool.geometry.pad == (0, 0, 0, 0)
        )

    def describe(self) -> str:
        ph, pw = self.pool.pool_size
        text = f"{self.name}: ReLU after the pool, on 1/{ph * pw} of the values"
        if self._winograd_tiles_are_windows():
            text += "; Winograd's output tiles pool themselves (large batches)"
        return text


class ConvMaxPool2D(_Fused):
    """A Conv2D (and its activation) whose output a MaxPool2D with tiling windows reads, as one
    layer: the columns are put in the pool's window order (``im2col_pooled``), so the GEMM
    gives every window offset as its own block and there is no gather, scatter or transposed
    copy; output positions no window covers are not computed (they cannot affect the loss). A
    ReLU is applied after the pool (see ``ReLUAfterMaxPool``), any other activation before it.

    Pays when the columns are smaller than the output (C*kh*kw < filters), as the strided
    copies then run on the smaller array: for the benchmark CNN's first layer (1 -> 32
    channels, 3x3, 2x2 pool, batch 32, one thread) forward and pool take 0.41 ms instead of
    0.56 and their backward 0.51 instead of 0.98 (``fusion.writes_pool_windows``).

    x (N, C, H, W) -> y (N, F, H'', W''), stored channel-major; H'' = H' // ph. Inside, with
    k = ph*pw window offsets: cols (C*kh*kw, k*N*H''*W''), windows z (F, k, N, H'', W'').

    With a ReLU, a stride-1 convolution of few taps (C*kh*kw <= 27) and a 2x2 pool of stride 2,
    a batch large enough to pay runs as the direct loops of ``kernels.direct_conv`` instead
    (each output row computed tap by tap, each window's maximum at once; on the benchmark CNN's
    first layer 0.77 + 0.68 ms a step against 0.83 + 1.2 for the GEMMs over the columns).
    """

    def __init__(self, conv: Layer, pool: Layer):
        super().__init__(conv, pool)
        self.conv, self.pool = conv, pool
        self.relu_after = isinstance(conv.activation, ReLU)
        self._scratch = Scratch()

    def forward(self, x, training=False):
        conv, (ph, pw), xp = self.conv, self.pool.pool_size, backend.xp
        self._x_shape = x.shape
        self._direct = self._runs_direct(x)
        if self._direct:
            args = (conv.kernel.value, conv._bias_value(), conv.geometry, self._scratch)
            self._pooled = direct_conv.forward(x, *args)
            self._y = conv.activation.forward(self._pooled)
            return self._y.transpose(1, 0, 2, 3)
        n, c = x.shape[:2]
        hp, wp = conv.geometry.out_hw[0] // ph, conv.geometry.out_hw[1] // pw
        # Padded entries are never written by im2col_pooled, so they must start (and stay) zero.
        cols = self._scratch.get("cols", (c, *conv.kernel_size, ph, pw, n, hp, wp), x.dtype, 0)
        cols = im2col_pooled(x, conv.geometry, (ph, pw), out=cols)
        z = xp.empty((conv.filters, ph * pw, n, hp, wp), dtype=x.dtype)
        conv_forward(conv.kernel.value, cols, conv._bias_value(), out=z.reshape(len(z), -1))
        if not self.relu_after:
            self._z = z
            z = self._a = conv.activation.forward(z)
        y, self._argmax = max_of_windows([z[:, k] for k in range(ph * pw)], self._scratch)
        if self.relu_after:
            self._pooled = y
            y = self._y = conv.activation.forward(y)
        return y.transpose(1, 0, 2, 3)

    def backward(self, dy):
        conv, (ph, pw), xp = self.conv, self.pool.pool_size, backend.xp
        dy = dy.transpose(1, 0, 2, 3)  # (F, N, H'', W''), a view of a channel-major dy
        if self.relu_after:
            dy = conv.activation.backward(dy, self._pooled, self._y)
        if self._direct:
            dbias = conv.bias.grad if conv.use_bias else None
            grads = (conv.kernel.grad, dbias, self._scratch, self.needs_input_grad)
            return direct_conv.backward(dy, conv.kernel.value, conv.geometry, *grads)
        hit = argmax_hits(self._argmax, ph * pw, self._scratch, axis=1)  # (F, k, N, H'', W'')
        dz = xp.empty(hit.shape, dtype=dy.dtype)
        xp.multiply(dy[:, None], hit, out=dz)
        if not self.relu_after:
            dz = conv.activation.backward(dz, self._z, self._a)
        dz = dz.reshape(conv.filters, -1)
        cols = self._scratch["cols"].reshape(conv.kernel.value[0].size, -1)
        dbias = conv.bias.grad if conv.use_bias else None
        conv_weight_gradients(dz, cols, conv.kernel.grad, dbias, self._scratch)
        if not self.needs_input_grad:
            return None
        # The columns are used up, unless padding zeros must survive in them.
        if conv.geometry.padded:
            cols = self._scratch.get("dcols", cols.shape, cols.dtype)
        dcols = conv_input_gradient(dz, conv.kernel.value, out=cols)
        return col2im_pooled(dcols, self._x_shape, conv.geometry, (ph, pw))

    def _runs_direct(self, x) -> bool:
        """Whether this batch runs as ``kernels.direct_conv``'s loops: a ReLU (applied after
        the pool), a geometry they take, and enough work to pay for them."""
        conv = self.conv
        taps = conv.kernel.value[0].size
        return (
            self.relu_after
            and direct_conv.suits(conv.geometry, self.pool.geometry, taps)
            and direct_conv.pays(x.size * conv.filters)
        )

    def describe(self) -> str:
        moved = "ReLU after the pool" if self.relu_after else "activation before the pool"
        direct = self.relu_after and direct_conv.suits(
            self.conv.geometry, self.pool.geometry, self.conv.kernel.value[0].size
        )
        how = "direct loops (large batches) or " if direct else ""
        return f"{self.name}: {how}the convolution writes the pool's windows; {moved}"
