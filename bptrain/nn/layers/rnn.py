"""SimpleRNN: the Elman recurrence ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel
+ bias)``."""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.layers.recurrent import Recurrent


class SimpleRNN(Recurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, units), recurrent_kernel (units, units), bias (units,). See ``layers.unrolled`` for
    ``go_backwards`` and ``truncate_bptt``.
    """

    gates = 1
    joint = True

    def _gate_blocks(self):
        return [self.cell_activation]

    def _steps(self, z):
        xp = backend.xp
        w, h = self._w, self._xs  # h[t, :u] = h_{t-1}, below step t's input
        t_len, u = len(h) - 1, self.units
        xp.matmul(w[:, u:], h[0, u:], out=z[0])  # h_0 = 0
        for t in range(t_len):
            zt = self._step_z(z, t)
            if t:
                xp.matmul(w, h[t], out=zt)
            self._gates.forward(zt, out=h[t + 1, :u])
        self._h = h
        return h

    def _backprop(self, dh, dseq):
        xp = backend.xp
        z, h = self._z, self._h
        dz = self._buffer("dz", (len(h) - 1, *dh.shape))
        self._gates.derivative(z, h[1:, : len(dh)], out=dz)  # all steps at once, then times dh:
        w = self.recurrent_kernel.value
        for t in reversed(range(len(dz))):
            if dseq is not None:
                dh += dseq[t]
            dz[t] *= dh
            if self._carries(t):
                xp.matmul(w, dz[t], out=dh)
            else:
                dh.fill(0)
        return dz
