"""A recurrence unrolled over time: the forward pass over every step, and backpropagation
through time (optionally truncated), which SimpleRNN, LSTM and GRU share (``Recurrent`` adds
their arguments and weights).

Inside, every step works on feature-major (k*units, N) blocks, and a ``joint`` layer (SimpleRNN,
LSTM) makes each step's whole pre-activation in one GEMM over ``[h_{t-1}; x_t; 1]``: see
``kernels.recurrent`` for the layout, its measured reasons and the gate-activation kernels. The
weight gradients of all steps are one GEMM after the time loop.

Truncated BPTT (``truncate_bptt=k``): the steps are cut into blocks of k in the order they are
processed (``[0, k), [k, 2k), ...``; with ``go_backwards`` that is the reversed sequence). The
forward pass is unchanged. In the backward pass the gradient that step t sends to the state it
started from, ``h[t-1]`` (and ``c[t-1]`` for LSTM), is dropped whenever t is a multiple of k: the
state that enters a block is treated as a constant input. Every step still adds its full
contribution to the weight gradients, and a gradient reaching step t has come back through at
most k steps (through ``t mod k + 1`` of them). With ``k >= T`` this is full BPTT.
"""

from __future__ import annotations

from bptrain.nn import backend
from bptrain.nn.kernels.blas_threads import matmul_on_cores
from bptrain.nn.kernels.recurrent import columns, padded_rows, stacked_transpose
from bptrain.nn.layer import Layer


class Unrolled(Layer):
    """Base class of ``Recurrent``, which sets ``units``, ``use_bias``, ``return_sequences``,
    ``go_backwards``, ``truncate_bptt``, the weights ``kernel``, ``recurrent_kernel`` (and
    ``bias``), the gates' ``_gates`` (``kernels.recurrent.GateActivations``) and ``_scratch``.
    A layer sets ``gates`` (k) and implements ``_steps`` and ``_backprop``.

    ``_steps(z)`` gets z (T, k*units, N), the input projection ``kernel^T x_t + input bias`` of
    every step (rows scaled by ``self._gates.scale`` when fused), runs the recurrence (adding
    the recurrent terms into z, caching what backward needs) and returns the states h (T+1,
    >=units, N), h[0] = 0 the initial state. For a ``joint`` layer z is unfilled: step t
    computes ``z[t] = self._w @ self._xs[t]`` itself, writes its state into ``self._xs[t + 1,
    :units]`` and returns ``self._xs`` as h; when its gates are ``fused``, z holds one step's
    block only, ``z[0]``, for every step (``self._step_z``), and ``self._z`` is None, else z.
    ``_backprop(dh, dseq)`` gets the running state gradient ``dh`` (units, N), holding the last
    output's gradient or zeros, and ``dseq`` (T, units, N), the gradient of every step's output
    (or None), and returns dz (T, k*units, N), the gradient of the (unscaled) input projection.
    A layer that is not ``joint`` implements ``_recurrent_grads(dzc)``, which adds the
    recurrent-kernel (and recurrent-bias) gradients, with dz given as columns (k*units, T*N).
    A layer whose time loops run the batch split over the cores (LSTM, ``kernels.blas_threads``)
    sets ``_cores`` to their number, and the weight-gradient and dx GEMMs are split the same way.
    """

    gates = 1
    joint = False
    _cores = 1  # the threads the last time loop ran on: the GEMMs after it use them too

    def _buffer(self, name: str, shape: tuple):
        """A scratch array of the weights' dtype kept between calls (see ``Scratch``)."""
        return self._scratch.get(name, shape, self.kernel.value.dtype)

    def _scaled_t(self, name: str, *ws, bias=None):
        """``[w1^T | w2^T ... | bias]`` with the sigmoid gates' rows halved when the gates are
        fused (``kernels.recurrent.stacked_transpose``)."""
        return stacked_transpose(self._scratch, name, ws, bias, self._gates.scale)

    # -- computing ------------------------------------------------------------------------------
    def forward(self, x, training=False):
        if x.ndim != 3:
            raise ValueError(
                f"{type(self).__name__} expects (batch, time, features), got {x.shape}"
            )
        xp = backend.xp
        n, t, d = x.shape
        u = self.units
        top = u if self.joint else 0
        # Each step's input as a feature-major ([units rows for h_{t-1} if joint,] D [+ 1 row of
        # ones for the bias], N) block; a joint layer's buffer has a last block for h_T.
        xs = self._buffer("x", (t + self.joint, top + d + self.use_bias, n))
        xs[:t, top : top + d] = (x[:, ::-1] if self.go_backwards else x).transpose(1, 2, 0)
        if self.use_bias:
            xs[:t, top + d] = 1.0
        self._xs = xs
        bias = self._input_bias(self.bias.value) if self.use_bias else None
        # A joint layer's steps fill z one by one, and only gates whose derivative needs the
        # pre-activation (neither sigmoid nor tanh) read it back: otherwise every step reuses
        # one block (3.7 MB less to write per LSTM(128) batch of 64 rows of MNIST).
        keep = not self.joint or not self._gates.fused
        z = self._buffer("z", (t if keep else 1, self.gates * u, n))
        self._z = z if keep else None  # what the backward pass may read
        if self.joint:
            xs[0, :u] = 0
            xs[t, u:] = 0  # h_T's block has no input; keep it finite
            self._w = self._scaled_t("w", self.recurrent_kernel.value, self.kernel.value, bias=bias)
        else:
            w = self._scaled_t("w", self.kernel.value, bias=bias)
            xp.matmul(w, xs, out=z)  # the input projection of every step, one batched GEMM
        h = self._steps(z)
        if self.return_sequences:
            return xp.ascontiguousarray(h[1:, :u].transpose(2, 0, 1))
        return xp.ascontiguousarray(h[t, :u].T)

    def backward(self, dy):
        t, _, n = self._xs.shape
        t -= self.joint
        dh = self._buffer("dh", (self.units, n))
        if self.return_sequences:
            dseq = self._buffer("dseq", (t, self.units, n))
            dseq[...] = dy.transpose(1, 2, 0)
            dh.fill(0)
        else:
            dseq = None
            dh[...] = dy.T
        dzc, xr = self._gradient_operands(dh, dseq)  # (k*units, T*N), (T*N, m)
        top = self.units if self.joint else 0
        if not self.joint:
            self._recurrent_grads(dzc)
        # (k*units, [units +] D [+ 1 for the bias] + padding); the inputs as rows (T*N, m), not
        # columns: 732 against 796 us for the joint LSTM benchmark GEMM (k*units=512, T*N=1792,
        # m=157), and 655 against 751 us with m padded to 160 (``padded_rows``).
        g = matmul_on_cores(dzc, xr, self._cores)
        d = self.kernel.shape[0]
        if self.joint:
            self.recurrent_kernel.grad += g[:, :top].T
        self.kernel.grad += g[:, top : top + d].T
        if self.use_bias:
            self._input_bias(self.bias.grad)[...] += g[:, top + d]
        if not self.needs_input_grad:
            return None
        dx = matmul_on_cores(self.kernel.value, dzc, self._cores).reshape(d, t, n)
        dx = dx.transpose(2, 1, 0)
        return dx[:, ::-1] if self.go_backwards else dx

    def _input_bias(self, param_array):
        """The part of ``bias`` (value or grad) added to the input projection."""
        return param_array

    def _steps(self, z):
        raise NotImplementedError

    def _backprop(self, dh, dseq):
        raise NotImplementedError

    def _recurrent_grads(self, dzc) -> None:
        raise NotImplementedError

    def _gradient_operands(self, dh, dseq):
        """The weight-gradient GEMM's operands: ``_backprop``'s dz (T, k*units, N) as columns
        (k*units, T*N), every step's block side by side (``columns``), and the steps' inputs
        as rows (T*N, m) (``padded_rows``). A layer whose time loop can write them directly
        (LSTM's compiled one) overrides this, saving the copy."""
        dzc = columns(self._scratch, "dzc", self._backprop(dh, dseq))
        return dzc, padded_rows(self._scratch, "xr", self._xs[: len(self._xs) - self.joint])

    # -- helpers for the subclasses' time loops ---------------------------------------------------
    @staticmethod
    def _step_z(z, t: int):
        """Step t's block of z, or the one block every step reuses (see ``_steps``)."""
        return z[t] if len(z) > 1 else z[0]

    def _carries(self, t: int) -> bool:
        """Whether step t passes its gradient on to the state it started from."""
        k = self.truncate_bptt
        return t > 0 and (k is None or t % k != 0)
