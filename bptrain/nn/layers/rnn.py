"""SimpleRNN: the Elman recurrence ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel
+ bias)``."""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.layers.recurrent import Recurrent


class SimpleRNN(Recurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, units), recurrent_kernel (units, units), bias (units,). See ``Recurrent`` for
    ``go_backwards`` and ``truncate_bptt``.
    """

    gates = 1

    def __init__(
        self,
        units: int,
        activation: str | None = "tanh",
        use_bias: bool = True,
        return_sequences: bool = False,
        go_backwards: bool = False,
        kernel_initializer: str | dict = "glorot_uniform",
        recurrent_initializer: str | dict = "orthogonal",
        bias_initializer: str | dict = "zeros",
        kernel_regularizer: str | dict | None = None,
        recurrent_regularizer: str | dict | None = None,
        bias_regularizer: str | dict | None = None,
        truncate_bptt: int | None = None,
        name: str | None = None,
    ):
        super().__init__(
            units, activation, None, use_bias, return_sequences, go_backwards,
            kernel_initializer, recurrent_initializer, bias_initializer, kernel_regularizer,
            recurrent_regularizer, bias_regularizer, truncate_bptt, name,
        )  # fmt: skip

    def _gate_blocks(self):
        return [self.cell_activation]

    def _steps(self, z):
        xp = backend.xp
        t_len, u, n = z.shape
        h = self._buffer("h", (t_len + 1, u, n))
        hw = self._buffer("hw", (u, n))
        h[0] = 0
        w = self._scaled_t("u", self.recurrent_kernel.value)
        for t in range(t_len):
            if t:
                xp.matmul(w, h[t], out=hw)
                z[t] += hw
            self._gates.forward(z[t], out=h[t + 1])
        self._z, self._h = z, h
        return h

    def _backprop(self, dh, dseq):
        xp = backend.xp
        z, h = self._z, self._h
        dz = self._buffer("dz", z.shape)
        w = self.recurrent_kernel.value
        for t in reversed(range(len(z))):
            if dseq is not None:
                dh += dseq[t]
            self._gates.derivative(z[t], h[t + 1], out=dz[t])
            dz[t] *= dh
            if self._carries(t):
                xp.matmul(w, dz[t], out=dh)
            else:
                dh.fill(0)
        return dz
