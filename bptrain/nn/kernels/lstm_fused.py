"""The LSTM step's elementwise work in one compiled pass per step (``kernels.compiled``).

With Keras' default activations (sigmoid gates computed as 0.5 tanh(z/2) + 0.5 on halved
weights, a tanh cell; ``kernels.recurrent``), a forward step of ``kernels.lstm.lstm_forward``
is nine NumPy calls after its GEMM. Here the calls between the two tanh passes of a forward
step (the sigmoid rows' ``0.5 t + 0.5``, then c_t = f c_{t-1} + i g) are one loop. The backward
pass's NumPy form is three: ``lstm_factors`` (a dozen passes over all steps' cache), the time
loop ``lstm_backward`` (four or five calls a step before its GEMM), and ``recurrent.columns``
(dz copied into the weight-gradient GEMM's layout); here each step is one loop that reads the
forward cache and writes dz in place in those columns. The loops do the same operations in the
same order and precision, so the layer's outputs and gradients are the reference's bit for bit
(tests/nn/kernels). The tanh passes stay NumPy's: its SIMD tanh is several times faster than a
compiled scalar one.

Where NumPy's BLAS and its tanh loop can be called from compiled code (``time_loops``), a
part's whole time loop, forward or backward, is one compiled call instead (see the section at
the end): the same calls in the same order, so again the same bits.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import activations, backend
from bptrain.nn.kernels import cblas, ufunc_loops
from bptrain.nn.kernels.compiled import compiled, usable

SIGMOID_TANH = (activations.Sigmoid, activations.Sigmoid, activations.Tanh, activations.Sigmoid)


def _cell_loop(gates, c_prev, c, half):
    """gates (4, u, N) = tanh of the (halved) pre-activations of (i, f, g, o): the sigmoid
    gates made 0.5 t + 0.5 in place; c (u, N) = f c_prev + i g. ``half``: 0.5 in their dtype."""
    units, n = c.shape
    for j in range(units):
        for k in range(n):
            i = gates[0, j, k] * half + half
            f = gates[1, j, k] * half + half
            gates[0, j, k] = i
            gates[1, j, k] = f
            gates[3, j, k] = gates[3, j, k] * half + half
            c[j, k] = f * c_prev[j, k] + gates[2, j, k] * i


def _back_from_cache_loop(s, tc, dh, dc, dzc, col, dseq, carry, one):
    """``kernels.lstm._factors_in_place`` and one step of ``lstm_backward``, from the forward
    cache: s (5u, N) = step t's (i, f, g, o, c_{t-1}), tc (u, N) = tanh(c_t); writes dz (i, f,
    g, o) into dzc[:, col : col + N] and carries dc (as ``lstm_backward``; dh is left for the
    GEMM). ``one``: 1 in their dtype. (Row views first: indexing the 2-D arrays in the inner
    loop kept it from vectorizing, 23 against 9 us a step at LSTM(128), batch 64.)"""
    units, n = dc.shape
    for j in range(units):
        si, sf, sg, so, sc = (
            s[j],
            s[units + j],
            s[2 * units + j],
            s[3 * units + j],
            s[4 * units + j],
        )
        tcj, dhj, dcj = tc[j], dh[j], dc[j]
        zi, zf = dzc[j, col : col + n], dzc[units + j, col : col + n]
        zg, zo = dzc[2 * units + j, col : col + n], dzc[3 * units + j, col : col + n]
        for k in range(n):
            i, f, g, o, c_prev, t = si[k], sf[k], sg[k], so[k], sc[k], tcj[k]
            d = dhj[k] if dseq is None else dhj[k] + dseq[j, k]
            zo[k] = (one - o) * (t * o) * d  # o' tanh(c_t) dh
            c = dcj[k] + (one - t * t) * o * d  # dc_t += o tanh'(c_t) dh
            ig = i * g
            zi[k] = (one - i) * ig * c  # i' g dc_t
            zf[k] = (one - f) * f * c_prev * c  # f' c_{t-1} dc_t
            zg[k] = (i - g * ig) * c  # g' i dc_t
            dcj[k] = c * f if carry else c


def fused_cell(gates, cell, buffers) -> bool:
    """Whether the compiled loops run for a layer with gate activations ``gates`` and cell
    activation ``cell`` on ``buffers`` (its step arrays): Keras' default activations, and
    ``compiled.usable`` for the total size of the buffers."""
    kinds = tuple(type(a) for a in gates.blocks)
    if not (gates.fused and kinds == SIGMOID_TANH and type(cell) is activations.Tanh):
        return False
    return usable(_cell_loop, buffers, sum(b.size for b in buffers))


def forward_steps(w, steps) -> None:
    """``kernels.lstm.lstm_forward`` over its ``steps`` with Keras' default activations (see
    ``fused_cell``): each step's calls between its two tanh passes as ``_cell_loop``. The
    NumPy functions and the compiled loop are looked up once, not in every step: the two
    threads of a batch split share the GIL for this Python code (``kernels.blas_threads``)."""
    xp = backend.xp
    matmul, tanh, multiply = xp.matmul, xp.tanh, xp.multiply
    loop, half = compiled(_cell_loop), steps[0].c.dtype.type(0.5)
    for t, step in enumerate(steps):
        if t:
            matmul(w, step.inputs, out=step.z)
        tanh(step.z, out=step.gates)
        loop(step.gate_blocks, step.c_prev, step.c, half)  # sigmoid rows, c_t = f c + i g
        tanh(step.c, out=step.tanh_c)
        multiply(step.o, step.tanh_c, out=step.h)  # h_t = o tanh(c_t)


def back_from_cache(w, s, tc, dh, dc, dseq, dzc, carries, cols: slice) -> None:
    """``kernels.lstm.lstm_factors``, ``lstm_backward`` and ``recurrent.columns`` in one pass a
    step (``fused_cell`` layers), for the batch's columns ``cols``: from their forward cache s
    (T+1, 5u, n) and tc (T, u, n) (left as they are), dh and dc (u, n) as for
    ``lstm_backward``, the recurrent kernel w (u, 4u), write every step's dz straight into its
    columns of dzc (4u, T*N): dzc[:, t*N + cols] (N the whole batch). ``carries`` (T,): whether
    step t passes its gradient on (``Unrolled._carries``)."""
    loop, one, matmul = compiled(_back_from_cache_loop), s.dtype.type(1), backend.xp.matmul
    t_len, n = len(tc), dh.shape[1]
    native = time_loops(s.dtype)
    if native is not None and w.flags.c_contiguous and dzc.flags.c_contiguous:  # one call
        args = (w, s, tc, dh, dc, dseq, dzc, cols.start, carries, one, native[0])
        compiled(_back_time_loop)(*args)
        return
    stride = dzc.shape[1] // t_len
    for t in reversed(range(t_len)):
        carry, col = bool(carries[t]), t * stride + cols.start
        loop(s[t], tc[t], dh, dc, dzc, col, None if dseq is None else dseq[t], carry, one)
        if carry:
            matmul(w, dzc[:, col : col + n], out=dh)
        else:
            dc.fill(0)
            dh.fill(0)


# -- whole time loops in one compiled call -----------------------------------------------------
#
# ``forward_steps`` and ``back_from_cache`` call NumPy (a GEMM, two tanh passes) and the compiled
# loops from Python in every step. With the batch split over two threads (``kernels.
# blas_threads``), the threads take turns at the GIL for those calls: on the benchmark LSTM
# the forward pass took 2.6 ms against 1.9 for its parts' sum, the backward loops 2.1 against
# 1.7. Below, a part's whole time loop is one compiled call that holds no GIL: its GEMMs call
# NumPy's BLAS (``kernels.cblas``), its tanh passes NumPy's own loop (``ufunc_loops``), with
# the arguments NumPy's calls would pass, so the results keep their bits. The step took 6.28
# against 6.72 ms (medians of 30 alternating blocks of 20 steps in one process). The loops
# compute addresses from the shapes: every array they get is C-contiguous (the layer's
# scratch buffers, ``compiled.usable``).

_time_loops: dict = {}
# Set by ``time_loops``, before the loops that call them are compiled:
_cell = _back = _unary = None


def time_loops(dtype) -> tuple | None:
    """(gemm, tanh) for ``forward_time_loop`` and ``back_from_cache`` on ``dtype``, made once:
    NumPy's BLAS GEMM of that precision and its tanh loop (``ufunc_loops.StridedLoop``); None
    where either cannot be called from compiled code, or Numba is missing."""
    dtype = np.dtype(dtype)
    if dtype not in _time_loops:
        gemms, tanh = cblas.gemms(), ufunc_loops.strided_loop(np.tanh, dtype)
        loops = (compiled(_cell_loop), compiled(_back_from_cache_loop))
        if gemms is None or tanh is None or None in loops or dtype.kind != "f":
            _time_loops[dtype] = None
        else:
            global _cell, _back, _unary
            _cell, _back = loops
            _unary = compiled(ufunc_loops._unary_loop)
            gemm = gemms[0] if dtype == np.float32 else gemms[1]
            _time_loops[dtype] = (gemm, tanh)
    return _time_loops[dtype]


def forward_time_loop(w, xs, cols: slice, z, s, tc) -> None:
    """``kernels.lstm.lstm_forward`` (``fused_cell`` layers) for the batch's columns ``cols``
    in one compiled call (``_forward_time_loop``); needs ``time_loops``. xs (T+1, K, N) the
    whole batch's inputs (the part's h_t are written into its columns), z (4u, n) the part's
    pre-activation block, s (T+1, 5u, n) with c_0 = 0 in place, tc (T, u, n)."""
    gemm, tanh = time_loops(w.dtype)
    half = w.dtype.type(0.5)
    loop = compiled(_forward_time_loop)
    loop(w, xs, cols.start, z, s, tc, half, gemm, tanh.function, tanh.context, tanh.auxdata)


def _forward_time_loop(w, xs, col, z, s, tc, half, gemm, tanh, context, auxdata):
    """``forward_steps``, step for step, for columns col : col + n of xs (n = z's width)."""
    four_u, k = w.shape
    u, n, big_n, size = four_u // 4, z.shape[1], xs.shape[2], xs.itemsize
    one, zero = half + half, half - half
    work = np.empty(5, np.int64)
    for t in range(len(tc)):
        skip = u if t == 0 else 0  # z_0 from x_0's rows alone: h_0 = 0
        a = w.ctypes.data + skip * size
        b = xs.ctypes.data + ((t * k + skip) * big_n + col) * size
        gemm(cblas.ROW_MAJOR, cblas.NO_TRANS, cblas.NO_TRANS, four_u, n, k - skip, one,
             a, k, b, big_n, zero, z.ctypes.data, n)  # fmt: skip
        gates = s[t, :four_u]
        _unary(tanh, context, auxdata, z, gates, work)
        c = s[t + 1, four_u:]
        _cell(gates.reshape(4, u, n), s[t, four_u:], c, half)  # sigmoid rows, c_t = f c + i g
        tanh_c = tc[t]
        _unary(tanh, context, auxdata, c, tanh_c, work)
        o = s[t, 3 * u : four_u]
        for j in range(u):  # h_t = o tanh(c_t)
            h, oj, tj = xs[t + 1, j, col : col + n], o[j], tanh_c[j]
            for q in range(n):
                h[q] = oj[q] * tj[q]


def _back_time_loop(w, s, tc, dh, dc, dseq, dzc, col, carries, one, gemm):
    """``back_from_cache``, step for step, in one call: carries[t] says whether step t passes
    its gradient on (``Unrolled._carries``)."""
    u, n = dc.shape
    t_len, size = len(tc), dzc.itemsize
    ld = dzc.shape[1]
    stride = ld // t_len
    zero = one - one
    for t in range(t_len - 1, -1, -1):
        at, carry = t * stride + col, carries[t]
        if dseq is None:
            _back(s[t], tc[t], dh, dc, dzc, at, None, carry, one)
        else:
            _back(s[t], tc[t], dh, dc, dzc, at, dseq[t], carry, one)
        if carry:  # dh_{t-1} = recurrent_kernel dz_t
            gemm(cblas.ROW_MAJOR, cblas.NO_TRANS, cblas.NO_TRANS, u, n, 4 * u, one,
                 w.ctypes.data, 4 * u, dzc.ctypes.data + at * size, ld, zero, dh.ctypes.data,
                 n)  # fmt: skip
        else:
            dc[...] = 0
            dh[...] = 0
