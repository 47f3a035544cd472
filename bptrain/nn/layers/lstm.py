"""LSTM (Hochreiter & Schmidhuber, 1997), with Keras' gate order (i, f, c, o).

z_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias         (N, 4*units)
i, f, o = recurrent_activation(z_i, z_f, z_o);  g = activation(z_c)
c_t = f * c_{t-1} + i * g;  h_t = o * activation(c_t)
"""

from __future__ import annotations

from bptrain.nn import activations, backend
from bptrain.nn.layers.recurrent import GatedRecurrent, apply, derivative


class LSTM(GatedRecurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, 4*units), recurrent_kernel (units, 4*units), bias (4*units,), gate blocks in
    the order i, f, c, o. ``unit_forget_bias`` starts the forget-gate bias at 1 (as Keras).
    See ``Recurrent`` for ``go_backwards`` and ``truncate_bptt``.
    """

    gates = 4
    joint = True

    def __init__(self, *args, unit_forget_bias: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
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
        w, h = self._w, self._xs  # h[t, :u] = h_{t-1}, below step t's input
        t_len, n = len(h) - 1, h.shape[2]
        u = self.units
        # s[t] = (i, f, g, o, c_{t-1}) of step t, blocks of (units, N): (f, g) * (c_{t-1}, i) is
        # one multiply (the second a view that steps back through the blocks), and s[t + 1, 4]
        # receives c_t.
        s = self._buffer("s", (t_len + 1, 5 * u, n))
        tc = self._buffer("tc", (t_len, u, n))  # activation(c_t)
        prod = self._buffer("prod", (2, u, n))
        s[0, 4 * u :] = 0
        gates, cell = self._gates, self.cell_activation
        matmul, multiply, add = xp.matmul, xp.multiply, xp.add
        matmul(w[:, u:], h[0, u:], out=z[0])  # h_0 = 0
        steps = self._scratch.views("steps", self._step_views, z, s, tc, h, prod)
        for t, (zt, ht, gt, sig, fg, ci, fc, gi, c, tct, o, ht1) in enumerate(steps):
            if t:
                matmul(w, ht, zt)
            gates.forward(zt, gt, sig)
            multiply(fg, ci, prod)
            add(fc, gi, c)
            apply(cell, c, tct)
            multiply(o, tct, ht1)
        self._s, self._tc = s, tc
        return h

    def _step_views(self, z, s, tc, h, prod):
        """What step t of ``_steps`` reads and writes, for every t (see ``Scratch.views``)."""
        u = self.units
        s4 = s.reshape(len(s), 5, u, -1)
        steps = []
        for t in range(len(s) - 1):
            gates = s[t, : 4 * u]
            steps.append(
                (self._step_z(z, t), h[t], gates, self._gates.sigmoid_rows(gates), s4[t, 1:3],
                 s4[t, 4::-4], prod[0], prod[1], s[t + 1, 4 * u :], tc[t], s4[t, 3], h[t + 1, :u])
            )  # fmt: skip
        return steps

    def _backprop(self, dh, dseq):
        xp = backend.xp
        t_len = len(self._tc)
        u, n = dh.shape
        # What does not depend on the recurrence, for all steps at once (fewer NumPy calls in
        # the loop below, which measured ~70 us per step with ~20 calls): m[t] holds the
        # factors (i' g, f' c_{t-1}, g' i, o' tanh(c_t), o tanh'(c_t)) that turn the gradient
        # of c_t (first three) and of h_t (last two) into dz; f the forget gates.
        if self._s is None:
            raise RuntimeError(
                f"{self.name}: backward() already ran for the last forward(); the backward pass "
                "reuses the forward pass's cache, so run forward() again first"
            )
        m, f = self._factors()
        self._s = None  # consumed (overwritten with the factors, for Keras' default activations)
        # Step t turns m[t] in place into (dz_i, dz_f, dz_g, dz_o, dh o tanh'(c_t)): its first
        # four blocks are dz[t].
        dc = self._buffer("dc", (u, n))
        dc.fill(0)
        w = self.recurrent_kernel.value
        matmul, multiply, add = xp.matmul, xp.multiply, xp.add
        steps = self._scratch.views("back", self._back_views, m, f)
        for t in reversed(range(t_len)):
            m_c, m_h, dc_h, dz, ft = steps[t]
            if dseq is not None:
                add(dh, dseq[t], dh)
            multiply(m_h, dh, m_h)
            add(dc, dc_h, dc)  # dc_t = dc_{t+1} f_{t+1} + dh o tanh'(c_t)
            multiply(m_c, dc, m_c)
            if self._carries(t):
                multiply(dc, ft, dc)
                matmul(w, dz, dh)
            else:
                dc.fill(0)
                dh.fill(0)
        return m[:, : 4 * u]

    def _back_views(self, m, f):
        """What step t of ``_backprop``'s loop reads and writes, for every t."""
        u = self.units
        m4 = m.reshape(len(m), 5, u, -1)
        return [(m4[t, :3], m4[t, 3:], m4[t, 4], m[t, : 4 * u], f[t]) for t in range(len(m))]

    def _factors(self):
        """(m, f): m (T, 5*units, N) the factors ``_backprop`` needs and f (T, units, N) the
        forget gates. With sigmoid gates and a tanh cell (Keras' default), m is computed in
        place of the forward pass's s (the step's memory traffic is most of its cost); otherwise
        into an array of its own, from the cached pre-activations."""
        xp = backend.xp
        s, tc, u = self._s, self._tc, self.units
        t_len = len(tc)
        s4 = s[:t_len].reshape(t_len, 5, u, -1)
        i, f, g, o, c_prev = (s4[:, j] for j in range(5))
        if not (
            isinstance(self.recurrent_activation, activations.Sigmoid)
            and isinstance(self.cell_activation, activations.Tanh)
        ):
            m3 = self._buffer("m", (t_len, 5 * u, s.shape[2]))
            self._gates.derivative(self._z, s[:t_len, : 4 * u], out=m3[:, : 4 * u])
            m = m3.reshape(s4.shape)
            m[:, 0] *= g
            m[:, 1] *= c_prev
            m[:, 2] *= i
            m[:, 3] *= tc
            derivative(self.cell_activation, s[1:, 4 * u :], tc, out=m[:, 4])
            m[:, 4] *= o
            return m3, f
        keep_f = self._buffer("f", f.shape)
        keep_f[...] = f
        f = keep_f
        # Each block is overwritten once nothing below needs it any more.
        xp.subtract(1.0, f, out=s4[:, 1])
        s4[:, 1] *= f
        s4[:, 1] *= c_prev  # f' c_{t-1}
        xp.multiply(tc, tc, out=s4[:, 4])
        xp.subtract(1.0, s4[:, 4], out=s4[:, 4])
        s4[:, 4] *= o  # o tanh'(c_t)
        tc *= o
        xp.subtract(1.0, o, out=s4[:, 3])
        s4[:, 3] *= tc  # o' tanh(c_t)
        ig = tc  # free now
        xp.multiply(i, g, out=ig)
        xp.multiply(g, ig, out=s4[:, 2])
        xp.subtract(i, s4[:, 2], out=s4[:, 2])  # g' i = (1 - g^2) i
        xp.subtract(1.0, i, out=s4[:, 0])
        s4[:, 0] *= ig  # i' g = (1 - i) i g
        return s[:t_len], f
