"""LSTM (Hochreiter & Schmidhuber, 1997), with Keras' gate order (i, f, c, o).

z_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias         (N, 4*units)
i, f, o = recurrent_activation(z_i, z_f, z_o);  g = activation(z_c)
c_t = f * c_{t-1} + i * g;  h_t = o * activation(c_t)
"""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.layers.recurrent import Recurrent, apply, derivative


class LSTM(Recurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, 4*units), recurrent_kernel (units, 4*units), bias (4*units,), gate blocks in
    the order i, f, c, o. ``unit_forget_bias`` starts the forget-gate bias at 1 (as Keras).
    See ``Recurrent`` for ``go_backwards`` and ``truncate_bptt``.
    """

    gates = 4

    def __init__(
        self,
        units: int,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
        use_bias: bool = True,
        return_sequences: bool = False,
        go_backwards: bool = False,
        kernel_initializer: str | dict = "glorot_uniform",
        recurrent_initializer: str | dict = "orthogonal",
        bias_initializer: str | dict = "zeros",
        unit_forget_bias: bool = True,
        kernel_regularizer: str | dict | None = None,
        recurrent_regularizer: str | dict | None = None,
        bias_regularizer: str | dict | None = None,
        truncate_bptt: int | None = None,
        name: str | None = None,
    ):
        super().__init__(
            units, activation, recurrent_activation, use_bias, return_sequences, go_backwards,
            kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, truncate_bptt, name,
        )  # fmt: skip
        self.unit_forget_bias = unit_forget_bias

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.use_bias and self.unit_forget_bias:
            self.bias.value[self.units : 2 * self.units] = 1.0
        return shape

    def _gate_blocks(self):
        rec, act = self.recurrent_activation, self.cell_activation
        return [rec, rec, act, rec]

    def _steps(self, z):
        xp = backend.xp
        t_len, _, n = z.shape
        u = self.units
        a = self._buffer("a", z.shape)  # i, f, g, o after their activations
        c = self._buffer("c", (t_len + 1, u, n))
        tc = self._buffer("tc", (t_len, u, n))  # activation(c_t)
        h = self._buffer("h", (t_len + 1, u, n))
        hw = self._buffer("hw", (4 * u, n))
        ig = self._buffer("ig", (u, n))
        h[0] = 0
        c[0] = 0
        w = self._scaled_t("u", self.recurrent_kernel.value)
        for t in range(t_len):
            if t:
                xp.matmul(w, h[t], out=hw)
                z[t] += hw
            at = a[t]
            self._gates.forward(z[t], out=at)
            i, f, g, o = at[:u], at[u : 2 * u], at[2 * u : 3 * u], at[3 * u :]
            xp.multiply(f, c[t], out=c[t + 1])
            xp.multiply(i, g, out=ig)
            c[t + 1] += ig
            apply(self.cell_activation, c[t + 1], tc[t])
            xp.multiply(o, tc[t], out=h[t + 1])
        self._z, self._a, self._c, self._tc, self._h = z, a, c, tc, h
        return h

    def _backprop(self, dh, dseq):
        xp = backend.xp
        z, a, c, tc = self._z, self._a, self._c, self._tc
        u, n = dh.shape
        dz = self._buffer("dz", z.shape)
        dc = self._buffer("dc", (u, n))
        tmp = self._buffer("tmp", (u, n))
        dc.fill(0)
        w = self.recurrent_kernel.value
        for t in reversed(range(len(z))):
            if dseq is not None:
                dh += dseq[t]
            at, d = a[t], dz[t]
            i, f, g, o = at[:u], at[u : 2 * u], at[2 * u : 3 * u], at[3 * u :]
            self._gates.derivative(z[t], at, out=d)  # d gate / dz, then times d loss / d gate:
            xp.multiply(dh, tc[t], out=tmp)
            d[3 * u :] *= tmp  # o: dh * tc
            derivative(self.cell_activation, c[t + 1], tc[t], out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp  # dc_t = dc_{t+1} f_{t+1} + dh o tc'
            xp.multiply(dc, g, out=tmp)
            d[:u] *= tmp  # i: dc * g
            xp.multiply(dc, c[t], out=tmp)
            d[u : 2 * u] *= tmp  # f: dc * c_{t-1}
            xp.multiply(dc, i, out=tmp)
            d[2 * u : 3 * u] *= tmp  # g: dc * i
            if self._carries(t):
                dc *= f
                xp.matmul(w, d, out=dh)
            else:
                dc.fill(0)
                dh.fill(0)
        return dz
