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
    joint = True

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
        # s[t] = (c_{t-1}, i, f, g, o) of step t, blocks of (units, N): with c_{t-1} next to the
        # gates, (f, g) * (c_{t-1}, i) is one multiply, and s[t + 1, 0] receives c_t.
        s = self._buffer("s", (t_len + 1, 5 * u, n))
        tc = self._buffer("tc", (t_len, u, n))  # activation(c_t)
        prod = self._buffer("prod", (2, u, n))
        s[0, :u] = 0
        w, h = self._w, self._xs  # h[t, :u] = h_{t-1}, below step t's input
        gates, cell = self._gates, self.cell_activation
        matmul, multiply, add = xp.matmul, xp.multiply, xp.add
        matmul(w[:, u:], h[0, u:], out=z[0])  # h_0 = 0
        steps = self._scratch.views("steps", self._step_views, z, s, tc, h, prod)
        for t, (zt, ht, gt, sig, fg, ci, c, tct, o, ht1) in enumerate(steps):
            if t:
                matmul(w, ht, zt)
            gates.forward(zt, gt, sig)
            multiply(fg, ci, prod)  # f c_{t-1}, g i
            add(prod[0], prod[1], c)
            apply(cell, c, tct)
            multiply(o, tct, ht1)
        self._z, self._s, self._tc = z, s, tc
        return h

    def _step_views(self, z, s, tc, h, prod):
        """What step t of ``_steps`` reads and writes, for every t (see ``Scratch.views``)."""
        u = self.units
        s4 = s.reshape(len(s), 5, u, -1)
        return [
            (z[t], h[t], s[t, u:], self._gates.sigmoid_rows(s[t, u:]), s4[t, 2:4], s4[t, :2],
             s[t + 1, :u], tc[t], s[t, 4 * u :], h[t + 1, :u])
            for t in range(len(z))
        ]  # fmt: skip

    def _backprop(self, dh, dseq):
        xp = backend.xp
        z, s, tc = self._z, self._s, self._tc
        t_len = len(z)
        u, n = dh.shape
        # What does not depend on the recurrence, for all steps at once (fewer NumPy calls in
        # the loop below, which measured ~70 us per step with ~20 calls): m[t] holds the
        # factors (i' g, f' c_{t-1}, g' i, o' tanh(c_t), o tanh'(c_t)) that turn the gradient
        # of c_t (first three) and of h_t (last two) into dz.
        m = self._buffer("m", (t_len, 5 * u, n))
        self._gates.derivative(z, s[:t_len, u:], out=m[:, : 4 * u])
        m[:, :u] *= s[:t_len, 3 * u : 4 * u]
        m[:, u : 3 * u] *= s[:t_len, : 2 * u]
        m[:, 3 * u : 4 * u] *= tc
        derivative(self.cell_activation, s[1:, :u], tc, out=m[:, 4 * u :])
        m[:, 4 * u :] *= s[:t_len, 4 * u :]
        # e[t] = (dz_i, dz_f, dz_g, dz_o, dh o tanh'(c_t)); its first four blocks are dz[t].
        e = self._buffer("e", (t_len, 5 * u, n))
        dc = self._buffer("dc", (u, n))
        dc.fill(0)
        w = self.recurrent_kernel.value
        matmul, multiply, add = xp.matmul, xp.multiply, xp.add
        steps = self._scratch.views("back", self._back_views, m, e, s)
        for t in reversed(range(t_len)):
            m_c, m_h, e_c, e_h, e_dc, dz, f = steps[t]
            if dseq is not None:
                add(dh, dseq[t], dh)
            multiply(m_h, dh, e_h)
            add(dc, e_dc, dc)  # dc_t = dc_{t+1} f_{t+1} + dh o tanh'(c_t)
            multiply(m_c, dc, e_c)
            if self._carries(t):
                multiply(dc, f, dc)
                matmul(w, dz, dh)
            else:
                dc.fill(0)
                dh.fill(0)
        return e[:, : 4 * u]

    def _back_views(self, m, e, s):
        """What step t of ``_backprop``'s loop reads and writes, for every t."""
        u = self.units
        m4, e4 = m.reshape(len(m), 5, u, -1), e.reshape(len(e), 5, u, -1)
        return [
            (m4[t, :3], m4[t, 3:], e4[t, :3], e4[t, 3:], e[t, 4 * u :], e[t, : 4 * u],
             s[t, 2 * u : 3 * u])
            for t in range(len(m))
        ]  # fmt: skip
