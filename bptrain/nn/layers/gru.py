"""GRU (Cho et al., 2014), with Keras' gate order (z, r, h) and both of Keras' variants.

``reset_after=True`` (Keras' default, and PyTorch's GRU up to the bias layout):

    x_t @ kernel + b_in = (xz, xr, xh);  h_{t-1} @ recurrent_kernel + b_rec = (rz, rr, rh)
    z = recurrent_activation(xz + rz);  r = recurrent_activation(xr + rr)
    hh = activation(xh + r * rh);  h_t = z * h_{t-1} + (1 - z) * hh

with bias (2, 3*units) = (b_in, b_rec). ``reset_after=False`` (the original GRU) applies the
reset gate before the matrix product, ``hh = activation(xh + (r * h_{t-1}) @ U_h)``, and has a
single bias (3*units,) in the input projection.
"""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.kernels.gru import (
    gru_backward_reset_after,
    gru_backward_reset_before,
    gru_forward_reset_after,
    gru_forward_reset_before,
)
from bptrain.nn.kernels.recurrent import GateActivations, columns
from bptrain.nn.layers.recurrent import GatedRecurrent


class GRU(GatedRecurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, 3*units), recurrent_kernel (units, 3*units), bias (2, 3*units) with
    ``reset_after`` else (3*units,). See ``layers.unrolled`` for ``go_backwards`` and
    ``truncate_bptt``.
    """

    gates = 3

    def __init__(self, *args, reset_after: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset_after = reset_after

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        # the layer's gates in two parts (z, r then hh), activated as the layer's weights are scaled
        blocks, fused = self._gates.blocks, self._gates.fused
        self._zr_gates = GateActivations(blocks[:2], self.units, fused)
        self._h_gate = GateActivations(blocks[2:], self.units, fused)
        return shape

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self, param_array):
        return param_array[0] if self.reset_after else param_array

    def _gate_blocks(self):
        rec, act = self.recurrent_activation, self.cell_activation
        return [rec, rec, act]

    def _steps(self, z):
        """z (T, 3u, N): the input projection of every step; returns h (T+1, u [+1], N)."""
        t_len, _, n = z.shape
        u = self.units
        a = self._buffer("a", z.shape)  # z, r, hh after their activations
        tmp = self._buffer("tmp", (u, n))
        gates = (self._zr_gates, self._h_gate)
        if self.reset_after:  # h gets a row of ones: the recurrent bias rides along the GEMM
            h = self._buffer("h", (t_len + 1, u + 1, n))
            h[:, u] = 1.0
            b_rec = self.bias.value[1] if self.use_bias else backend.xp.zeros(3 * u, z.dtype)
            w = self._scaled_t("u", self.recurrent_kernel.value, bias=b_rec)
            rec = self._buffer("rec", z.shape)  # scaled recurrent_kernel^T h_{t-1} + b_rec
            h[0, :u] = 0
            gru_forward_reset_after(z, a, h, rec, w, *gates, tmp)
        else:
            h = self._buffer("h", (t_len + 1, u, n))
            w = self._scaled_t("u", self.recurrent_kernel.value)
            rec = self._buffer("rh", (t_len, u, n))  # r * h_{t-1}
            h[0, :u] = 0
            gru_forward_reset_before(z, a, h, rec, w, *gates, tmp, self._buffer("hw", (2 * u, n)))
        self._a, self._h, self._rec = a, h, rec
        return h

    def _backprop(self, dh, dseq):
        """dh (u, N): the last output's gradient (or zeros); dseq (T, u, N) every output's
        (or None) -> dz (T, 3u, N)."""
        z, a, h = self._z, self._a, self._h
        dz = self._buffer("dz", z.shape)
        w = self.recurrent_kernel.value
        self._drec = None
        if self.reset_after:
            self._drec = self._buffer("drec", z.shape)  # d loss / d(U^T h + b_rec)
            # rec holds the candidate block's recurrent term times its scale (1 for tanh)
            scale = self._gates.scale
            unscale = 1.0 if scale is None else 1.0 / scale[2 * self.units]
            args = (dz, dh, dseq, z, a, h, self._rec, self._drec, w, self._gates, unscale)
            gru_backward_reset_after(*args, self._carries)
        else:
            gru_backward_reset_before(dz, dh, dseq, z, a, h, w, self._gates, self._carries)
        return dz

    def _recurrent_grads(self, dzc):
        u, n = self.units, self._h.shape[2]
        grad = self.recurrent_kernel.grad
        hc = columns(self._scratch, "hc", self._h[:-1])
        if self.reset_after:
            # every step, the first included: the ones row of h collects the recurrent bias
            g = columns(self._scratch, "drc", self._drec) @ hc.T  # (3u, u + 1)
            grad += g[:, :u].T
            if self.use_bias:
                self.bias.grad[1] += g[:, u]
        else:
            grad[:, : 2 * u] += (dzc[: 2 * u, n:] @ hc[:, n:].T).T
            rhc = columns(self._scratch, "rhc", self._rec)
            grad[:, 2 * u :] += (dzc[2 * u :] @ rhc.T).T
