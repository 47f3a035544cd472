"""What SimpleRNN, LSTM and GRU share: the input projection, the step-by-step buffers, the
weight gradients as one GEMM over all steps, and truncated backprop through time.

Shapes: inputs x (N, T, D); outputs (N, T, units) with ``return_sequences``, else (N, units).

The weight layout is Keras': ``kernel`` (D, k*units), ``recurrent_kernel`` (units, k*units) and
``bias`` (k*units,), the k gate blocks side by side in Keras' order, so weights carry over to
and from Keras (and, with a reorder, PyTorch).

Inside, every step works on feature-major arrays: step t's gate pre-activations are
``z[t]`` (k*units, N), so each gate block ``z[t, j*units:(j+1)*units]`` is one contiguous
(units, N) array and each elementwise operation is a single flat loop (NumPy is several times
slower on strided 2-D views, such as the blocks of a (N, k*units) array). The bias rides along
the input GEMM as an extra input row of ones.

A ``joint`` layer (SimpleRNN, LSTM: every gate sees ``h_{t-1} @ recurrent_kernel``) makes each
step's whole pre-activation in one GEMM, ``[recurrent_kernel; kernel; bias]^T [h_{t-1}; x_t;
1]``, with the states written into the top rows of the input buffer: one GEMM with K = units + D
+ 1 costs less than the recurrent GEMM plus an add per step plus a batched input GEMM (that
NumPy runs on one thread), and in the backward pass all three weight gradients are one GEMM.
Measured at LSTM(128), D=28, batch 64, 2 threads: per step 25.6 us against 20.9 + 2.0 us, and
the batched input GEMM 214 us per batch, the separate recurrent and kernel gradient GEMMs 595 +
251 us against 732 us joint. GRU, whose reset gate splits the candidate's recurrent term from its
input term, keeps the input projection of all steps as one GEMM before its recurrence.

Truncated BPTT (``truncate_bptt=k``): the steps are cut into blocks of k in the order they are
processed (``[0, k), [k, 2k), ...``; with ``go_backwards`` that is the reversed sequence). The
forward pass is unchanged. In the backward pass the gradient that step t sends to the state it
started from, ``h[t-1]`` (and ``c[t-1]`` for LSTM), is dropped whenever t is a multiple of k: the
state that enters a block is treated as a constant input. Every step still adds its full
contribution to the weight gradients, and a gradient reaching step t has come back through at
most k steps (through ``t mod k + 1`` of them). With ``k >= T`` this is full BPTT.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import activations, backend
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.layer import Layer


def apply(activation: activations.Activation, z, out) -> None:
    """``out[...] = activation(z)``, without temporaries for tanh and sigmoid (hot loop)."""
    xp = backend.xp
    if isinstance(activation, activations.Tanh):
        xp.tanh(z, out=out)
    elif isinstance(activation, activations.Sigmoid):
        xp.multiply(z, 0.5, out=out)  # sigmoid(z) = 0.5 tanh(z/2) + 0.5: no overflow
        xp.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    else:
        out[...] = activation.forward(z)


def derivative(activation: activations.Activation, z, a, out) -> None:
    """``out[...] = d activation / dz`` from the cached pre-activation z and output a."""
    xp = backend.xp
    if isinstance(activation, activations.Sigmoid):
        xp.subtract(1.0, a, out=out)
        out *= a
    elif isinstance(activation, activations.Tanh):
        xp.multiply(a, a, out=out)
        xp.subtract(1.0, out, out=out)
    else:
        out[...] = activation.backward(1.0, z, a)


class GateActivations:
    """The activations of the k gate blocks of a feature-major (k*units, N) array, e.g. LSTM's
    (sigmoid, sigmoid, tanh, sigmoid) for (i, f, c, o).

    When every block is sigmoid or tanh (``fused``), the layer multiplies the sigmoid rows of
    its weights by ``scale`` = 1/2, so that one tanh over all rows and ``0.5 t + 0.5`` on the
    sigmoid rows give every gate: sigmoid(z) = 0.5 tanh(z / 2) + 0.5. Otherwise ``scale`` is
    None and each block is activated on its own (also when ``fused=False`` is passed: a
    subset of a layer's gates must follow the layer's choice).
    """

    def __init__(self, blocks: list[activations.Activation], units: int, fused: bool = True):
        self.blocks, self.units = blocks, units
        self.runs = []  # (activation, first row, end row), equal neighbours merged
        for j, act in enumerate(blocks):
            if self.runs and type(self.runs[-1][0]) is type(act) and _plain(act):
                self.runs[-1][2] = (j + 1) * units
            else:
                self.runs.append([act, j * units, (j + 1) * units])
        self.fused = fused and all(_plain(a) for a in blocks)
        self.scale = None
        if self.fused:
            sig = [isinstance(a, activations.Sigmoid) for a in blocks]
            self.scale = np.repeat([0.5 if s else 1.0 for s in sig], units)
            self._sigmoid_rows = [
                slice(lo, hi) for act, lo, hi in self.runs if isinstance(act, activations.Sigmoid)
            ]

    def forward(self, z, out, sigmoid_rows=None) -> None:
        """Activate the pre-activations z (k*units, N) (scaled by ``scale`` if fused) into out;
        ``sigmoid_rows``: ``self.sigmoid_rows(out)``, if the caller keeps it (hot loop)."""
        if self.fused:
            xp = backend.xp
            xp.tanh(z, out)
            for t in self.sigmoid_rows(out) if sigmoid_rows is None else sigmoid_rows:
                xp.multiply(t, 0.5, t)
                xp.add(t, 0.5, t)
            return
        for act, lo, hi in self.runs:
            apply(act, z[lo:hi], out[lo:hi])

    def sigmoid_rows(self, out) -> list:
        """The views of out's sigmoid rows that the fused ``forward`` turns from tanh(z / 2)
        into sigmoid(z)."""
        return [out[rows] for rows in self._sigmoid_rows] if self.fused else []

    def derivative(self, z, a, out) -> None:
        """``out`` (..., k*units, N) = d gates / dz (of the unscaled z) from cached z and gates
        a, e.g. one step's (k*units, N) or all steps' (T, k*units, N) at once. z may be None
        when every block is sigmoid or tanh (``fused``): their derivatives need only a."""
        for act, lo, hi in self.runs:
            rows = (..., slice(lo, hi), slice(None))
            derivative(act, None if z is None else z[rows], a[rows], out[rows])


def _plain(act) -> bool:
    return isinstance(act, (activations.Sigmoid, activations.Tanh))


class Recurrent(Layer):
    """Base class. A subclass sets ``gates`` (k) and implements ``_steps`` and ``_backprop``.

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
    """

    gates = 1
    joint = False

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
        super().__init__(name)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"{type(self).__name__} units must be a positive integer, got {units}")
        if truncate_bptt is not None and (not isinstance(truncate_bptt, int) or truncate_bptt < 1):
            raise ValueError(
                f"truncate_bptt must be a positive integer or null, got {truncate_bptt}"
            )
        self.units = units
        # Not ``self.activation``: Sequential would try to fuse that into the loss.
        self.cell_activation = _elementwise(activation)
        self.use_bias = use_bias
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.truncate_bptt = truncate_bptt
        self._scratch = Scratch()

    def _gate_blocks(self) -> list[activations.Activation]:
        """The activation of each of the k gate blocks, in Keras' order."""
        raise NotImplementedError

    # -- building -------------------------------------------------------------------------------
    def build(self, input_shape, rng):
        if len(input_shape) != 2:
            raise ValueError(
                f"expects inputs of shape (time, features) per sample, got {tuple(input_shape)}; "
                "add a Reshape (e.g. target_shape: [28, 28]) or an Embedding before it"
            )
        k, u = self.gates, self.units
        self.kernel = self.add_parameter(
            "kernel",
            (input_shape[-1], k * u),
            self.kernel_initializer,
            rng,
            self.kernel_regularizer,
        )
        self.recurrent_kernel = self.add_parameter(
            "recurrent_kernel",
            (u, k * u),
            self.recurrent_initializer,
            rng,
            self.recurrent_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_parameter(
                "bias", self._bias_shape(), self.bias_initializer, rng, self.bias_regularizer
            )
        self._gates = GateActivations(self._gate_blocks(), u)
        return (input_shape[0], u) if self.return_sequences else (u,)

    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _input_bias(self, param_array):
        """The part of ``bias`` (value or grad) added to the input projection."""
        return param_array

    def _buffer(self, name: str, shape: tuple):
        """A scratch array of the weights' dtype kept between calls (see ``Scratch``)."""
        return self._scratch.get(name, shape, self.kernel.value.dtype)

    def _scaled_t(self, name: str, *ws, bias=None):
        """``[w1^T | w2^T ... | bias]`` for weights wi (mi, k*units), with the rows of sigmoid
        gates halved when fused: (k*units, sum(mi) (+1)), C-ordered for the per-step GEMMs
        (2.6 us a step faster than its transposed view for LSTM(128))."""
        rows, cols = ws[0].shape[1], sum(w.shape[0] for w in ws) + (bias is not None)
        stacked = self._buffer(name + "^T", (cols, rows))
        scale = self._gates.scale
        if scale is not None:
            scale = backend.asarray(scale, dtype=stacked.dtype)
        row = 0
        for w in (*ws, bias[None]) if bias is not None else ws:
            block = stacked[row : row + len(w)]
            row += len(w)
            if scale is None:
                block[...] = w
            else:
                backend.xp.multiply(w, scale, out=block)
        # Transposed in slabs of 16 rows: a whole (157, 512) float32 array at once measured 92
        # against 28 us (reading columns 2 KiB apart thrashes the cache sets).
        out = self._buffer(name, (rows, cols))
        for r in range(0, cols, 16):
            out[:, r : r + 16] = stacked[r : r + 16].T
        return out

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
        dzc = self._columns("dzc", self._backprop(dh, dseq))  # (k*units, T*N)
        top = self.units if self.joint else 0
        if not self.joint:
            self._recurrent_grads(dzc)
        # (k*units, [units +] D [+ 1 for the bias] + padding); the inputs as rows (T*N, m), not
        # columns: 732 against 796 us for the joint LSTM benchmark GEMM (k*units=512, T*N=1792,
        # m=157), and 655 against 751 us with m padded to 160 (see ``_rows``).
        g = dzc @ self._rows("xr", self._xs[:t])
        d = self.kernel.shape[0]
        if self.joint:
            self.recurrent_kernel.grad += g[:, :top].T
        self.kernel.grad += g[:, top : top + d].T
        if self.use_bias:
            self._input_bias(self.bias.grad)[...] += g[:, top + d]
        if not self.needs_input_grad:
            return None
        dx = (self.kernel.value @ dzc).reshape(d, t, n).transpose(2, 1, 0)
        return dx[:, ::-1] if self.go_backwards else dx

    def _steps(self, z):
        raise NotImplementedError

    def _backprop(self, dh, dseq):
        raise NotImplementedError

    def _recurrent_grads(self, dzc) -> None:
        raise NotImplementedError

    # -- helpers for the subclasses' time loops ---------------------------------------------------
    @staticmethod
    def _step_z(z, t: int):
        """Step t's block of z, or the one block every step reuses (see ``_steps``)."""
        return z[t] if len(z) > 1 else z[0]

    def _carries(self, t: int) -> bool:
        """Whether step t passes its gradient on to the state it started from."""
        k = self.truncate_bptt
        return t > 0 and (k is None or t % k != 0)

    def _columns(self, name: str, a):
        """(T, m, N) -> (m, T*N): every step's block side by side, for GEMMs over all steps."""
        t, m, n = a.shape
        out = self._buffer(name, (m, t * n))
        out.reshape(m, t, n)[...] = a.transpose(1, 0, 2)
        return out

    def _rows(self, name: str, a):
        """(T, m, N) -> (T*N, m'): every step's block transposed, stacked, with zero columns up
        to m' = m rounded up to a multiple of 16. As the right operand of a weight-gradient
        GEMM (whose extra output columns are dropped) the padded width runs faster in OpenBLAS:
        512x1792 by 1792x157 took 751 us, by 1792x160 655 us; 384x1792 by 1792x29 177 us, by
        1792x32 120 us (2 threads)."""
        t, m, n = a.shape
        out = self._scratch.get(name, (t * n, -(-m // 16) * 16), a.dtype, fill=0)
        out[:, :m].reshape(t, n, m)[...] = a.transpose(0, 2, 1)
        return out

    # -- description ----------------------------------------------------------------------------
    def config(self):
        cfg = {"units": self.units, "return_sequences": self.return_sequences}
        if self.go_backwards:
            cfg["go_backwards"] = True
        if self.truncate_bptt is not None:
            cfg["truncate_bptt"] = self.truncate_bptt
        return cfg


class GatedRecurrent(Recurrent):
    """A recurrent layer with gates (LSTM, GRU): adds their ``recurrent_activation``. The other
    arguments are ``Recurrent``'s, passed on (config validation follows ``**kwargs`` there)."""

    def __init__(self, *args, recurrent_activation: str | None = "sigmoid", **kwargs):
        super().__init__(*args, **kwargs)
        self.recurrent_activation = _elementwise(recurrent_activation)


def _elementwise(name: str | None) -> activations.Activation:
    act = activations.get(name)
    if isinstance(act, activations.Softmax):
        raise ValueError("softmax is not elementwise; recurrent layers need tanh, sigmoid, ...")
    return act
