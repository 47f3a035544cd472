"""LSTM step loops: the fast kernels, and the textbook cell they are held to.

Layout (feature-major, see ``kernels.recurrent``), for T steps, N sequences, u units:
  xs (T+1, u + D + 1, N)  step t's inputs [h_{t-1}; x_t; 1], so z_t = w @ xs[t] in one GEMM;
                          step t writes h_t into xs[t + 1, :u] (xs[T, :u] is the last state)
  w  (4u, u + D + 1)      [recurrent_kernel; kernel; bias]^T, sigmoid rows halved when fused
  z  (T or 1, 4u, N)      pre-activations (with fused gates one block every step reuses)
  s  (T+1, 5u, N)         s[t] = (i, f, g, o, c_{t-1}), gate blocks of (u, N); c_t in s[t+1]
  tc (T, u, N)            tanh(c_t), or the cell activation of c_t

Backward (``lstm_factors`` then ``lstm_backward``) first computes, for all steps at once, the
factors m[t] (5u, N) = (i' g, f' c_{t-1}, g' i, o' tanh(c_t), o tanh'(c_t)) that turn the
gradients of c_t (first three) and h_t (last two) into dz: what is left in the time loop is
four NumPy calls and one GEMM per step (it measured ~70 us per step with ~20 calls). With
Keras' default activations the factors overwrite the forward cache s in place (the step's
memory traffic is most of its cost), so one forward pass serves one backward pass; with the
one reused pre-activation block and the padded weight-gradient rows (``padded_rows``) this took
a step from 4.2-4.3 to 3.6-3.7 ms (README, Performance). Other activations take the plain path
(factors computed into an array of their own from the cached pre-activations). Where Numba
runs, Keras' default activations take ``lstm_fused.back_from_cache`` instead: the factors, the
time loop's calls and the copy into the weight-gradient columns in one compiled pass a step.
"""

from __future__ import annotations

from typing import NamedTuple

from bptrain.nn import activations, backend
from bptrain.nn.kernels import lstm_fused
from bptrain.nn.kernels.recurrent import apply, derivative


def lstm_cell(x_t, h, c, weights):
    """The textbook cell, Keras' gate order (i, f, g, o): x_t (N, D), h and c (N, u) ->
    (h_t, c_t, cache). ``weights``: (kernel (D, 4u), recurrent_kernel (u, 4u), bias (4u,),
    recurrent_activation, activation)."""
    kernel, recurrent_kernel, bias, rec, act = weights
    z = x_t @ kernel + h @ recurrent_kernel + bias  # (N, 4u)
    u = h.shape[1]
    z_i, z_f, z_g, z_o = z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]
    i, f, g, o = rec.forward(z_i), rec.forward(z_f), act.forward(z_g), rec.forward(z_o)
    c_t = f * c + i * g
    tanh_c = act.forward(c_t)
    h_t = o * tanh_c
    return h_t, c_t, (x_t, h, c, (z_i, z_f, z_g, z_o), (i, f, g, o), c_t, tanh_c)


def lstm_reference(x, weights):
    """The plain forward pass: x (N, T, D) -> (hs (N, T, u), cache), h_0 = c_0 = 0;
    ``weights`` as for ``lstm_cell``."""
    n, t_len, _ = x.shape
    h = c = backend.xp.zeros((n, weights[1].shape[0]), dtype=x.dtype)
    hs, caches = [], []
    for t in range(t_len):
        h, c, cache = lstm_cell(x[:, t], h, c, weights)
        hs.append(h)
        caches.append(cache)
    return backend.xp.stack(hs, axis=1), (caches, weights)


def lstm_reference_backward(dhs, cache, truncate_bptt=None):
    """The plain backward pass through time: dhs (N, T, u), the gradient of every step's
    output -> (dx (N, T, D), dkernel, drecurrent_kernel, dbias). With ``truncate_bptt`` k,
    steps t = k, 2k, ... pass nothing back to the state they started from."""
    steps, (kernel, recurrent_kernel, _, rec, act) = cache
    dh_next = dc_next = 0.0
    dx, dkernel, drecurrent, dbias = [], 0.0, 0.0, 0.0
    for t in reversed(range(len(steps))):
        x_t, h_prev, c_prev, (z_i, z_f, z_g, z_o), (i, f, g, o), c_t, tanh_c = steps[t]
        dh = dhs[:, t] + dh_next
        dc = dc_next + act.backward(dh * o, c_t, tanh_c)
        dz_i, dz_f = rec.backward(dc * g, z_i, i), rec.backward(dc * c_prev, z_f, f)
        dz_g, dz_o = act.backward(dc * i, z_g, g), rec.backward(dh * tanh_c, z_o, o)
        dz = backend.xp.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)  # (N, 4u)
        dkernel = dkernel + x_t.T @ dz
        drecurrent = drecurrent + h_prev.T @ dz
        dbias = dbias + dz.sum(axis=0)
        dx.append(dz @ kernel.T)
        carries = t > 0 and (truncate_bptt is None or t % truncate_bptt != 0)
        dh_next, dc_next = (dz @ recurrent_kernel.T, dc * f) if carries else (0.0, 0.0)
    return backend.xp.stack(dx[::-1], axis=1), dkernel, drecurrent, dbias


class _Step(NamedTuple):
    """Views of the buffers that forward step t reads and writes (see the module docstring)."""

    z: object  # (4u, N) pre-activations of (i, f, g, o)
    inputs: object  # xs[t]: [h_{t-1}; x_t; 1]
    gates: object  # s[t, :4u]: (i, f, g, o) after activation
    gate_blocks: object  # the same as (4, u, N)
    c_prev: object  # c_{t-1}: s[t, 4u:]
    sigmoid_rows: list  # the gates' sigmoid rows (``GateActivations.sigmoid_rows``)
    f_g: object  # (f, g) (2, u, N)
    c_i: object  # (c_{t-1}, i) (2, u, N): a view stepping back through s[t]'s blocks
    products: object  # (f c_{t-1}, g i) (2, u, N)
    f_c: object  # products[0]
    i_g: object  # products[1]
    c: object  # c_t: s[t + 1, 4u:]
    tanh_c: object  # tc[t]
    o: object  # s[t, 3u:4u]
    h: object  # h_t: xs[t + 1, :u]


def lstm_step_views(z, s, tc, xs, products, gates) -> list[_Step]:
    """A ``_Step`` for every t (slicing costs ~0.2 us a view: the layer keeps these, see
    ``Scratch.views``). ``gates``: the layer's ``GateActivations``."""
    t_len, u = len(tc), tc.shape[1]
    s4 = s.reshape(len(s), 5, u, -1)
    return [
        _Step(
            z=z[t] if len(z) > 1 else z[0],
            inputs=xs[t],
            gates=s[t, : 4 * u],
            gate_blocks=s4[t, :4],
            c_prev=s4[t, 4],
            sigmoid_rows=gates.sigmoid_rows(s[t, : 4 * u]),
            f_g=s4[t, 1:3],
            c_i=s4[t, 4::-4],
            products=products,
            f_c=products[0],
            i_g=products[1],
            c=s[t + 1, 4 * u :],
            tanh_c=tc[t],
            o=s4[t, 3],
            h=xs[t + 1, :u],
        )
        for t in range(t_len)
    ]


def lstm_forward(w, steps: list[_Step], gates, cell, fused: bool = False) -> None:
    """Run the recurrence over ``steps`` (``lstm_step_views``); c_0 = 0 and h_0 = 0 must be in
    place, and steps[0].z must hold z_0 (only x_0's part: h_0 = 0). ``fused``: the compiled
    cell loop (``lstm_fused.forward_steps``; ``fused_cell`` says where it can run), else the
    NumPy calls."""
    if fused:
        lstm_fused.forward_steps(w, steps)
        return
    xp = backend.xp
    for t, step in enumerate(steps):
        if t:
            xp.matmul(w, step.inputs, out=step.z)
        gates.forward(step.z, step.gates, step.sigmoid_rows)
        xp.multiply(step.f_g, step.c_i, step.products)
        xp.add(step.f_c, step.i_g, step.c)  # c_t = f c_{t-1} + i g
        apply(cell, step.c, step.tanh_c)
        xp.multiply(step.o, step.tanh_c, step.h)  # h_t = o tanh(c_t)


def lstm_factors(s, tc, z, gates, cell, scratch):
    """(m, f): m (T, 5u, N) the backward factors (see the module docstring), f (T, u, N) the
    forget gates (a copy in ``scratch``). Sigmoid gates with a tanh cell: m is s, overwritten
    in place (``_factors_in_place``); otherwise m is computed from the pre-activations z."""
    t_len, u = len(tc), tc.shape[1]
    s4 = s[:t_len].reshape(t_len, 5, u, -1)
    f = scratch.get("f", s4[:, 1].shape, s.dtype)
    f[...] = s4[:, 1]
    if isinstance(gates.blocks[0], activations.Sigmoid) and isinstance(cell, activations.Tanh):
        _factors_in_place(s4, tc, f)
        return s[:t_len], f
    m = scratch.get("m", (t_len, 5 * u, s.shape[2]), s.dtype)
    gates.derivative(z, s[:t_len, : 4 * u], out=m[:, : 4 * u])
    m4 = m.reshape(s4.shape)
    for j, by in enumerate((s4[:, 2], s4[:, 4], s4[:, 0], tc)):  # i' g, f' c, g' i, o' tanh(c)
        m4[:, j] *= by
    derivative(cell, s[1:, 4 * u :], tc, out=m4[:, 4])
    m4[:, 4] *= s4[:, 3]  # o tanh'(c_t)
    return m, f


def _factors_in_place(s4, tc, f) -> None:
    """s4 (T, 5, u, N) = (i, f, g, o, c_{t-1}) -> (i' g, f' c_{t-1}, g' i, o' tanh(c_t),
    o tanh'(c_t)), each block overwritten once nothing below needs it; tc is used up, f is
    the forget gates' copy."""
    xp = backend.xp
    i, g, o, c_prev = s4[:, 0], s4[:, 2], s4[:, 3], s4[:, 4]
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


class _BackStep(NamedTuple):
    """Views of the factors m[t] and forget gate f[t] that backward step t reads and writes."""

    m_c: object  # (i' g, f' c_{t-1}, g' i): times dc_t -> (dz_i, dz_f, dz_g)
    m_h: object  # (o' tanh(c_t), o tanh'(c_t)): times dh_t -> (dz_o, dh_t o tanh'(c_t))
    dc_h: object  # dh_t o tanh'(c_t), once m_h is multiplied
    dz: object  # m[t, :4u]: (dz_i, dz_f, dz_g, dz_o) once done
    f: object  # f_t


def lstm_back_views(m, f) -> list[_BackStep]:
    """A ``_BackStep`` for every t."""
    u = f.shape[1]
    m4 = m.reshape(len(m), 5, u, -1)
    return [_BackStep(m4[t, :3], m4[t, 3:], m4[t, 4], m[t, : 4 * u], f[t]) for t in range(len(m))]


def lstm_backward(w, steps: list[_BackStep], dh, dc, dseq, carries) -> None:
    """Back through time: turn every step's factors into dz in place. dh (u, N) holds the
    last output's gradient (or zeros), dseq (T, u, N) every output's (or None); dc (u, N)
    zeros; w the recurrent kernel (u, 4u); ``carries(t)``: whether step t passes its gradient
    on to the state it started from (truncated BPTT). (``lstm_fused.back_from_cache`` is the
    compiled form of this with ``lstm_factors`` and ``recurrent.columns``.)"""
    xp = backend.xp
    for t in reversed(range(len(steps))):
        step = steps[t]
        if dseq is not None:
            xp.add(dh, dseq[t], dh)
        xp.multiply(step.m_h, dh, step.m_h)
        xp.add(dc, step.dc_h, dc)  # dc_t = dc_{t+1} f_{t+1} + dh o tanh'(c_t)
        xp.multiply(step.m_c, dc, step.m_c)
        if carries(t):
            xp.multiply(dc, step.f, dc)
            xp.matmul(w, step.dz, out=dh)
        else:
            dc.fill(0)
            dh.fill(0)
