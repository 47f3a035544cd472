"""LSTM (Hochreiter & Schmidhuber, 1997), with Keras' gate order (i, f, g, o).

For each step t, with x_t (N, D) and the state h_{t-1}, c_{t-1} (N, units):

    z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias     (N, 4*units) = (z_i, z_f, z_g, z_o)
    i = sigmoid(z_i)   input gate        f = sigmoid(z_f)   forget gate
    g = tanh(z_g)      candidate cell    o = sigmoid(z_o)   output gate
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

and backward, from dh_t (the output's gradient plus what step t+1 sends back) and dc_{t+1}:

    dc_t = dc_{t+1} * f_{t+1} + dh_t * o * tanh'(c_t)
    dz_i = dc_t * g * i'        dz_f = dc_t * c_{t-1} * f'
    dz_g = dc_t * i * g'        dz_o = dh_t * tanh(c_t) * o'
    dh_{t-1} = dz @ recurrent_kernel^T;   dx_t = dz @ kernel^T
    dkernel += x_t^T dz;   drecurrent_kernel += h_{t-1}^T dz;   dbias += sum over N of dz

(sigmoid and tanh being Keras' defaults for ``recurrent_activation`` and ``activation``). This is
``kernels.lstm.lstm_cell`` / ``lstm_reference``, step for step; the layer runs the same
algorithm as the fast kernels ``lstm_forward`` and ``lstm_backward`` (feature-major blocks, one
GEMM per step over [h; x; 1], the gate derivatives of all steps computed at once), and the
tests hold the two together.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from bptrain.nn import backend
from bptrain.nn.kernels import lstm_fused
from bptrain.nn.kernels.blas_threads import on_cores, split_columns
from bptrain.nn.kernels.lstm import (
    lstm_back_views,
    lstm_backward,
    lstm_factors,
    lstm_forward,
    lstm_step_views,
)
from bptrain.nn.kernels.recurrent import padded_rows
from bptrain.nn.layers.recurrent import GatedRecurrent


class LSTM(GatedRecurrent):
    """x: (N, T, D) -> (N, T, units) with ``return_sequences``, else the last state (N, units).

    kernel (D, 4*units), recurrent_kernel (units, 4*units), bias (4*units,), gate blocks in
    the order i, f, g, o. ``unit_forget_bias`` starts the forget-gate bias at 1 (as Keras).
    See ``layers.unrolled`` for ``go_backwards`` and ``truncate_bptt``.
    """

    gates = 4
    joint = True

    def __init__(self, *args, unit_forget_bias: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit_forget_bias = unit_forget_bias
        self._cache = None  # the forward pass's ``_Part``s
        self._fused = False

    def build(self, input_shape, rng):
        shape = super().build(input_shape, rng)
        if self.use_bias and self.unit_forget_bias:
            self.bias.value[self.units : 2 * self.units] = 1.0
        return shape

    def _gate_blocks(self):
        rec, act = self.recurrent_activation, self.cell_activation
        return [rec, rec, act, rec]  # i, f, g, o

    def _steps(self, z):
        """z (T or 1, 4u, N): step t's pre-activations; returns the inputs buffer, where each
        step has written h_t (see ``kernels.lstm`` for every buffer's layout). With the
        compiled cell, the batch's columns are split over the BLAS threads, each part running
        the whole time loop on its own core (``blas_threads``; one part on one thread): the
        benchmark LSTM's step took 6.3-6.45 against 6.55-6.75 ms with OpenBLAS splitting each
        GEMM (2 threads, alternating runs)."""
        xs, n = self._xs, self._xs.shape[2]
        self._fused = lstm_fused.fused_cell(self._gates, self.cell_activation, (z, xs))
        parts = split_columns(n) if self._fused else [slice(0, n)]
        # Each part's buffers are made here, before the threads start (scratch arrays are not
        # made thread-safely), so that a part's thread only runs its loop.
        jobs = [self._part(cols, z, p, len(parts)) for p, cols in enumerate(parts)]
        on_cores(lambda p: jobs[p][0](), len(parts))
        self._cache, self._cores = [part for _, part in jobs], len(parts)
        return xs

    def _part(self, cols: slice, z, p: int, parts: int):
        """(run, its _Part): the time loop for the batch's columns ``cols`` (part p of
        ``parts``), and what it leaves for the backward pass; z the pre-activation buffer (T or
        1, 4u, N), of which each part of several gets one of its own width."""
        w, u, t_len = self._w, self.units, len(self._xs) - 1
        n = cols.stop - cols.start
        if parts > 1:
            z = self._buffer(f"z{p}", (len(z), z.shape[1], n))
        s = self._buffer(f"s{p}", (t_len + 1, 5 * u, n))  # s[t] = (i, f, g, o, c_{t-1})
        tc = self._buffer(f"tc{p}", (t_len, u, n))  # tanh(c_t)
        s[0, 4 * u :] = 0  # c_0
        part = _Part(cols, s, tc)
        if self._fused and lstm_fused.time_loops(w.dtype) is not None:  # one compiled call
            return partial(lstm_fused.forward_time_loop, w, self._xs, cols, z[0], s, tc), part
        xs = self._scratch.views(f"xs[{cols.start}:{cols.stop}]", lambda a: a[:, :, cols], self._xs)
        products = self._buffer(f"products{p}", (2, u, n))
        views = (z, s, tc, xs, products, self._gates)
        steps = self._scratch.views(f"steps{p}", lstm_step_views, *views)

        def run() -> None:
            backend.xp.matmul(w[:, u:], xs[0, u:], out=z[0])  # z_0: h_0 = 0
            lstm_forward(w, steps, self._gates, self.cell_activation, self._fused)

        return run, part

    def _backprop(self, dh, dseq):
        """dh (u, N): the last output's gradient (or zeros); dseq (T, u, N) every output's
        (or None) -> dz (T, 4u, N)."""
        (part,) = self._take_cache()
        m, f = lstm_factors(
            part.s, part.tc, self._z, self._gates, self.cell_activation, self._scratch
        )
        dc = self._buffer("dc", dh.shape)
        dc.fill(0)
        steps = self._scratch.views("back", lstm_back_views, m, f)
        lstm_backward(self.recurrent_kernel.value, steps, dh, dc, dseq, self._carries)
        return m[:, : 4 * self.units]

    def _gradient_operands(self, dh, dseq):
        """With the compiled cell (``fused_cell``), one compiled pass a step computes each
        step's factors from the forward cache and writes dz straight into its columns
        (``lstm_fused.back_from_cache``), the same bits as ``_backprop`` and ``columns``
        (7.64 -> 7.28 ms a step, benchmark LSTM, 2 threads, A/B); each part of the forward
        pass runs this on its own core again, then copies its own inputs into the rows."""
        if not self._fused:
            return super()._gradient_operands(dh, dseq)
        parts, (u, n) = self._take_cache(), dh.shape
        xs = self._xs[: len(parts[0].tc)]
        dzc = self._buffer("dzc", (4 * u, len(xs) * n))
        xr = padded_rows(self._scratch, "xr", xs, slice(0))  # made here, filled by the parts
        w = self.recurrent_kernel.value
        carries = self._scratch.views("carries", self._carries_of, parts[0].tc)
        jobs = []
        for p, (cols, s, tc) in enumerate(parts):  # each part's buffers (see ``_steps``)
            dh_p = self._buffer(f"dh{p}", tc.shape[1:])
            dh_p[...] = dh[:, cols]
            dc_p = self._buffer(f"dc{p}", dh_p.shape)
            dc_p.fill(0)
            dseq_p = None
            if dseq is not None:
                dseq_p = self._buffer(f"dseq{p}", (len(tc), *dh_p.shape))
                dseq_p[...] = dseq[:, :, cols]
            jobs.append((w, s, tc, dh_p, dc_p, dseq_p, dzc, carries, cols))

        def run(p: int) -> None:
            lstm_fused.back_from_cache(*jobs[p])
            padded_rows(self._scratch, "xr", xs, parts[p].cols, out=xr)

        on_cores(run, len(parts))
        return dzc, xr

    def _carries_of(self, tc):
        """Whether each of tc's T steps passes its gradient on (``_carries``), as an array."""
        return np.array([self._carries(t) for t in range(len(tc))])

    def _take_cache(self) -> list:
        """The forward pass's ``_Part``s, once: the backward pass may overwrite them."""
        if self._cache is None:
            raise RuntimeError(
                f"{self.name}: backward() already ran for the last forward(); the backward pass "
                "reuses the forward pass's cache, so run forward() again first"
            )
        cache, self._cache = self._cache, None
        return cache


class _Part(NamedTuple):
    """What the forward pass leaves for the backward pass, for the batch's columns ``cols``."""

    cols: slice
    s: object  # (T+1, 5u, width): s[t] = (i, f, g, o, c_{t-1})
    tc: object  # (T, u, width): tanh(c_t)
