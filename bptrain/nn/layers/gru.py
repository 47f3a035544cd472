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
from bptrain.nn.kernels.recurrent import GateActivations, columns
from bptrain.nn.layers.recurrent import GatedRecurrent


class GRU(GatedRecurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, 3*units), recurrent_kernel (units, 3*units), bias (2, 3*units) with
    ``reset_after`` else (3*units,). See ``Recurrent`` for ``go_backwards`` and
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
        xp = backend.xp
        t_len, _, n = z.shape
        u = self.units
        a = self._buffer("a", z.shape)  # z, r, hh after their activations
        tmp = self._buffer("tmp", (u, n))
        zr_gates, h_gate = self._zr_gates, self._h_gate
        if self.reset_after:
            # h gets a row of ones, so that the recurrent bias rides along the GEMM.
            h = self._buffer("h", (t_len + 1, u + 1, n))
            h[:, u] = 1.0
            b_rec = self.bias.value[1] if self.use_bias else xp.zeros(3 * u, z.dtype)
            w = self._scaled_t("u", self.recurrent_kernel.value, bias=b_rec)
            rec = self._buffer("rec", z.shape)  # scaled recurrent_kernel^T h_{t-1} + b_rec
        else:
            h = self._buffer("h", (t_len + 1, u, n))
            w = self._scaled_t("u", self.recurrent_kernel.value)
            rh = self._buffer("rh", (t_len, u, n))  # r * h_{t-1}
            hw = self._buffer("hw", (2 * u, n))
        h[0, :u] = 0
        for t in range(t_len):
            zt, at, h_prev = z[t], a[t], h[t, :u]
            if self.reset_after:
                xp.matmul(w, h[t], out=rec[t])
                zt[: 2 * u] += rec[t, : 2 * u]
                zr_gates.forward(zt[: 2 * u], out=at[: 2 * u])
                xp.multiply(at[u : 2 * u], rec[t, 2 * u :], out=tmp)
            else:
                if t:
                    xp.matmul(w[: 2 * u], h_prev, out=hw)
                    zt[: 2 * u] += hw
                zr_gates.forward(zt[: 2 * u], out=at[: 2 * u])
                xp.multiply(at[u : 2 * u], h_prev, out=rh[t])
                xp.matmul(w[2 * u :], rh[t], out=tmp)
            zt[2 * u :] += tmp
            hh = at[2 * u :]
            h_gate.forward(zt[2 * u :], out=hh)
            xp.subtract(h_prev, hh, out=tmp)  # h_t = hh + z * (h_{t-1} - hh)
            tmp *= at[:u]
            xp.add(hh, tmp, out=h[t + 1, :u])
        self._a, self._h = a, h
        self._rec = rec if self.reset_after else rh
        return h

    def _backprop(self, dh, dseq):
        xp = backend.xp
        z, a, h = self._z, self._a, self._h
        u, n = dh.shape
        dz = self._buffer("dz", z.shape)
        tmp = self._buffer("tmp", (u, n))
        if self.reset_after:
            drec = self._buffer("drec", z.shape)  # d loss / d(recurrent_kernel^T h + b_rec)
            # rec holds the candidate block's recurrent term times its scale (1 for tanh)
            unscale = 1.0 if self._gates.scale is None else 1.0 / self._gates.scale[2 * u]
        else:
            drh = self._buffer("drh", (u, n))
        w = self.recurrent_kernel.value
        for t in reversed(range(len(z))):
            if dseq is not None:
                dh += dseq[t]
            at, d, h_prev = a[t], dz[t], h[t, :u]
            zg, r, hh = at[:u], at[u : 2 * u], at[2 * u :]
            self._gates.derivative(z[t], at, out=d)  # d gate / dz, then times d loss / d gate:
            xp.subtract(h_prev, hh, out=tmp)
            tmp *= dh
            d[:u] *= tmp  # z: dh * (h_{t-1} - hh)
            xp.subtract(1.0, zg, out=tmp)
            tmp *= dh
            d[2 * u :] *= tmp  # hh: dh * (1 - z)
            if self.reset_after:
                xp.multiply(d[2 * u :], self._rec[t, 2 * u :], out=tmp)
                if unscale != 1.0:
                    tmp *= unscale
                d[u : 2 * u] *= tmp  # r: d_hh * (U_h^T h + b_rh)
                drec[t, : 2 * u] = d[: 2 * u]
                xp.multiply(d[2 * u :], r, out=drec[t, 2 * u :])
                if self._carries(t):
                    xp.multiply(dh, zg, out=tmp)
                    xp.matmul(w, drec[t], out=dh)
                    dh += tmp
                else:
                    dh.fill(0)
            else:
                xp.matmul(w[:, 2 * u :], d[2 * u :], out=drh)  # d loss / d(r * h_{t-1})
                xp.multiply(drh, h_prev, out=tmp)
                d[u : 2 * u] *= tmp  # r: d(r h) * h_{t-1}
                if self._carries(t):
                    drh *= r
                    xp.multiply(dh, zg, out=tmp)
                    xp.matmul(w[:, : 2 * u], d[: 2 * u], out=dh)
                    dh += tmp
                    dh += drh
                else:
                    dh.fill(0)
        self._drec = drec if self.reset_after else None
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
