"""The LSTM step's elementwise work in one compiled pass per step (``kernels.compiled``).

With Keras' default activations (sigmoid gates computed as 0.5 tanh(z/2) + 0.5 on halved
weights, a tanh cell; ``kernels.recurrent``), a forward step of ``kernels.lstm.lstm_forward``
is nine NumPy calls after its GEMM, and a backward step of ``lstm_backward`` four or five
before its GEMM, each a pass over (u, N) blocks. Here the calls between the two tanh passes of
a forward step (the sigmoid rows' ``0.5 t + 0.5``, then c_t = f c_{t-1} + i g) are one loop,
and a backward step's calls are one loop: the same operations in the same order and precision,
so the layer's outputs and gradients are the reference's bit for bit (tests/nn/kernels). The
tanh passes stay NumPy's: its SIMD tanh is several times faster than a compiled scalar one.
"""

from __future__ import annotations

from bptrain.nn import activations
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


def _back_loop(m_h, m_c, dh, dc, f, dseq, carry):
    """One backward step of ``lstm_backward``: dh += dseq (if given); m_h (2, u, N) *= dh;
    dc += m_h[1]; m_c (3, u, N) *= dc; then dc *= f if ``carry`` (else the caller zeroes dc)."""
    units, n = dc.shape
    for j in range(units):
        for k in range(n):
            d = dh[j, k]
            if dseq is not None:
                d = d + dseq[j, k]
                dh[j, k] = d
            m_h[0, j, k] = m_h[0, j, k] * d
            tc = m_h[1, j, k] * d
            m_h[1, j, k] = tc
            c = dc[j, k] + tc
            m_c[0, j, k] = m_c[0, j, k] * c
            m_c[1, j, k] = m_c[1, j, k] * c
            m_c[2, j, k] = m_c[2, j, k] * c
            dc[j, k] = c * f[j, k] if carry else c


def fused_cell(gates, cell, buffers) -> bool:
    """Whether the compiled loops run for a layer with gate activations ``gates`` and cell
    activation ``cell`` on ``buffers`` (its step arrays): Keras' default activations, and
    ``compiled.usable`` for the total size of the buffers."""
    kinds = tuple(type(a) for a in gates.blocks)
    if not (gates.fused and kinds == SIGMOID_TANH and type(cell) is activations.Tanh):
        return False
    return usable(_cell_loop, buffers, sum(b.size for b in buffers))


def cell_step(gates, c_prev, c) -> None:
    """``_cell_loop`` compiled (see ``fused_cell``)."""
    compiled(_cell_loop)(gates, c_prev, c, gates.dtype.type(0.5))


def back_step(m_h, m_c, dh, dc, f, dseq, carry: bool) -> None:
    """``_back_loop`` compiled (see ``fused_cell``)."""
    compiled(_back_loop)(m_h, m_c, dh, dc, f, dseq, carry)
