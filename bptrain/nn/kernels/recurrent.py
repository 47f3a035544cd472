"""What the recurrent layers' step loops share: gate activations and the feature-major layout.

Every step works on feature-major arrays: step t's gate pre-activations are ``z[t]``
(k*units, N), so each gate block ``z[t, j*units:(j+1)*units]`` is one contiguous (units, N)
array and each elementwise operation is a single flat loop (NumPy is several times slower on
strided 2-D views, such as the blocks of a (N, k*units) array). The bias rides along the
input GEMM as an extra input row of ones.

A ``joint`` layer (SimpleRNN, LSTM: every gate sees ``h_{t-1} @ recurrent_kernel``) makes each
step's whole pre-activation in one GEMM, ``[recurrent_kernel; kernel; bias]^T [h_{t-1}; x_t;
1]``: one GEMM with K = units + D + 1 costs less than the recurrent GEMM plus an add per step
plus a batched input GEMM (that NumPy runs on one thread), and in the backward pass all three
weight gradients are one GEMM. Measured at LSTM(128), D=28, batch 64, 2 threads: per step 25.6
us against 20.9 + 2.0 us, and the batched input GEMM 214 us per batch, the separate recurrent
and kernel gradient GEMMs 595 + 251 us against 732 us joint.

Sigmoid as tanh (``GateActivations.fused``): when every gate block is sigmoid or tanh, the
layer multiplies the sigmoid rows of its weights by 1/2, so that one tanh over all rows and
``0.5 t + 0.5`` on the sigmoid rows give every gate: sigmoid(z) = 0.5 tanh(z / 2) + 0.5, which
never overflows and is one tanh per step for all gates instead of one per block: LSTM(128)'s
gates for a batch of 64, 21.7 against 26.8 us a step (best of 7 runs, 2-core machine under load).
The plain per-block path (``fused=False``, and any other activation) is beside it.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import activations, backend


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


def _plain(act) -> bool:
    return isinstance(act, (activations.Sigmoid, activations.Tanh))


class GateActivations:
    """The activations of the k gate blocks of a feature-major (k*units, N) array, e.g. LSTM's
    (sigmoid, sigmoid, tanh, sigmoid) for (i, f, g, o).

    When every block is sigmoid or tanh (``fused``), ``scale`` holds 1/2 for the rows of sigmoid
    gates and 1 for the others: the layer multiplies its weights' rows by it (see the module
    docstring). Otherwise ``scale`` is None and each block is activated on its own (also with
    ``fused=False``: a subset of a layer's gates must follow the layer's choice).
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


def stacked_transpose(scratch, name: str, ws, bias=None, scale=None):
    """``[w1^T | w2^T ... | bias]`` for weights wi (mi, k*units), the rows multiplied by
    ``scale`` (k*units,) if given: (k*units, sum(mi) (+1)), C-ordered for the per-step GEMMs
    (2.6 us a step faster than its transposed view for LSTM(128)). A ``scratch`` array."""
    rows, cols = ws[0].shape[1], sum(w.shape[0] for w in ws) + (bias is not None)
    stacked = scratch.get(name + "^T", (cols, rows), ws[0].dtype)
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
    out = scratch.get(name, (rows, cols), stacked.dtype)
    for r in range(0, cols, 16):
        out[:, r : r + 16] = stacked[r : r + 16].T
    return out


def columns(scratch, name: str, a):
    """(T, m, N) -> (m, T*N): every step's block side by side, for GEMMs over all steps."""
    t, m, n = a.shape
    out = scratch.get(name, (m, t * n), a.dtype)
    out.reshape(m, t, n)[...] = a.transpose(1, 0, 2)
    return out


def padded_rows(scratch, name: str, a, cols: slice = slice(None), out=None):
    """(T, m, N) -> (T*N, m'): every step's block transposed, stacked, with zero columns up to
    m' = m rounded up to a multiple of 16. As the right operand of a weight-gradient GEMM
    (whose extra output columns are dropped) the padded width runs faster in OpenBLAS:
    512x1792 by 1792x157 took 751 us, by 1792x160 655 us; 384x1792 by 1792x29 177 us, by
    1792x32 120 us (2 threads). Only the rows of the batch's columns ``cols`` are written, into
    ``out`` if given (one part of a batch split over threads: make ``out`` beforehand, with
    ``cols=slice(0)``, as scratch arrays are not made thread-safely)."""
    t, m, n = a.shape
    if out is None:
        out = scratch.get(name, (t * n, -(-m // 16) * 16), a.dtype, fill=0)
    out[:, :m].reshape(t, n, m)[:, cols] = a[:, :, cols].transpose(0, 2, 1)
    return out
