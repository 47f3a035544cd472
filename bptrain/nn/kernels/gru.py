"""GRU step loops: the fast kernels, and the textbook cell they are held to.

Layout (feature-major, see ``kernels.recurrent``), for T steps, N sequences, u units, gate rows
in Keras' order (z, r, hh):
  z   (T, 3u, N)        the input projection x_t @ kernel + b_in of every step (rows scaled
                        by the gates' ``scale`` when fused); the recurrent terms are added in
  a   (T, 3u, N)        the gates after activation
  h   (T+1, u [+1], N)  the states, h[0] = 0; with ``reset_after`` a last row of ones, so that
                        the recurrent bias rides along the recurrent GEMM
  rec (T, 3u, N)        reset_after: (scaled) recurrent_kernel^T h_{t-1} + b_rec
  rh  (T, u, N)         reset before the product: r * h_{t-1}
"""

from __future__ import annotations

from bptrain.nn import backend


def gru_cell(x_t, h, weights, reset_after: bool):
    """The textbook cell: x_t (N, D), h (N, u) -> (h_t, cache). ``weights``: (kernel (D, 3u),
    recurrent_kernel (u, 3u), bias ((2, 3u) with ``reset_after``, else (3u,)),
    recurrent_activation, activation)."""
    kernel, recurrent_kernel, bias, rec, act = weights
    u = h.shape[1]
    b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, 0.0 * bias)
    x_z, x_r, x_h = _split(x_t @ kernel + b_in, u)
    h_z, h_r, h_h = _split(h @ recurrent_kernel + b_rec, u)
    z, r = rec.forward(x_z + h_z), rec.forward(x_r + h_r)
    if reset_after:
        pre_hh = x_h + r * h_h
    else:
        pre_hh = x_h + (r * h) @ recurrent_kernel[:, 2 * u :]
    hh = act.forward(pre_hh)
    h_t = z * h + (1 - z) * hh
    return h_t, (x_t, h, (x_z + h_z, x_r + h_r, pre_hh), (z, r, hh), h_h)


def _split(a, u: int) -> tuple:
    return a[:, :u], a[:, u : 2 * u], a[:, 2 * u :]


def gru_reference(x, weights, reset_after: bool):
    """The plain forward pass: x (N, T, D) -> (hs (N, T, u), cache), h_0 = 0."""
    h = backend.xp.zeros((len(x), weights[1].shape[0]), dtype=x.dtype)
    hs, caches = [], []
    for t in range(x.shape[1]):
        h, cache = gru_cell(x[:, t], h, weights, reset_after)
        hs.append(h)
        caches.append(cache)
    return backend.xp.stack(hs, axis=1), (caches, weights, reset_after)


def gru_reference_backward(dhs, cache, truncate_bptt=None):
    """The plain backward pass through time: dhs (N, T, u) -> (dx (N, T, D), dkernel,
    drecurrent_kernel, dbias)."""
    steps, (kernel, recurrent_kernel, bias, rec, act), reset_after = cache
    u = recurrent_kernel.shape[0]
    grads = {"kernel": 0.0, "recurrent": 0.0, "bias": 0.0 * bias}
    dh_next, dx = 0.0, []
    for t in reversed(range(len(steps))):
        x_t, h_prev, (pre_z, pre_r, pre_hh), (z, r, hh), h_h = steps[t]
        dh = dhs[:, t] + dh_next
        d_pre_z = rec.backward(dh * (h_prev - hh), pre_z, z)
        d_pre_hh = act.backward(dh * (1 - z), pre_hh, hh)
        if reset_after:
            d_pre_r = rec.backward(d_pre_hh * h_h, pre_r, r)
            d_rec = backend.xp.concatenate([d_pre_z, d_pre_r, d_pre_hh * r], axis=1)
            grads["recurrent"] = grads["recurrent"] + h_prev.T @ d_rec
            grads["bias"][1] += d_rec.sum(axis=0)
            dh_prev = d_rec @ recurrent_kernel.T
        else:
            d_rh = d_pre_hh @ recurrent_kernel[:, 2 * u :].T
            d_pre_r = rec.backward(d_rh * h_prev, pre_r, r)
            d_zr = backend.xp.concatenate([d_pre_z, d_pre_r], axis=1)
            grads["recurrent"] = grads["recurrent"] + backend.xp.concatenate(
                [h_prev.T @ d_zr, (r * h_prev).T @ d_pre_hh], axis=1
            )
            dh_prev = d_zr @ recurrent_kernel[:, : 2 * u].T + d_rh * r
        d_in = backend.xp.concatenate([d_pre_z, d_pre_r, d_pre_hh], axis=1)
        grads["kernel"] = grads["kernel"] + x_t.T @ d_in
        (grads["bias"][0] if reset_after else grads["bias"])[...] += d_in.sum(axis=0)
        dx.append(d_in @ kernel.T)
        carries = t > 0 and (truncate_bptt is None or t % truncate_bptt != 0)
        dh_next = dh_prev + dh * z if carries else 0.0
    return backend.xp.stack(dx[::-1], axis=1), grads["kernel"], grads["recurrent"], grads["bias"]


def _new_state(zt, at, h_prev, h_next, tmp, h_gate) -> None:
    """hh = activation(z[t]'s candidate rows) and h_t = hh + z (h_{t-1} - hh), into h_next."""
    u = len(h_prev)
    hh = at[2 * u :]
    h_gate.forward(zt[2 * u :], out=hh)
    backend.xp.subtract(h_prev, hh, out=tmp)
    tmp *= at[:u]
    backend.xp.add(hh, tmp, out=h_next)


def gru_forward_reset_after(z, a, h, rec, w, zr_gates, h_gate, tmp) -> None:
    """Keras' default GRU: the reset gate applies to the recurrent term (with its bias)."""
    xp, u = backend.xp, tmp.shape[0]
    for t in range(len(z)):
        zt, at = z[t], a[t]
        xp.matmul(w, h[t], out=rec[t])
        zt[: 2 * u] += rec[t, : 2 * u]
        zr_gates.forward(zt[: 2 * u], out=at[: 2 * u])
        xp.multiply(at[u : 2 * u], rec[t, 2 * u :], out=tmp)  # r * (U_h h_{t-1} + b_rh)
        zt[2 * u :] += tmp
        _new_state(zt, at, h[t, :u], h[t + 1, :u], tmp, h_gate)


def gru_forward_reset_before(z, a, h, rh, w, zr_gates, h_gate, tmp, hw) -> None:
    """The original GRU: the reset gate applies to h_{t-1} before the candidate's product."""
    xp, u = backend.xp, tmp.shape[0]
    for t in range(len(z)):
        zt, at, h_prev = z[t], a[t], h[t, :u]
        if t:
            xp.matmul(w[: 2 * u], h_prev, out=hw)
            zt[: 2 * u] += hw
        zr_gates.forward(zt[: 2 * u], out=at[: 2 * u])
        xp.multiply(at[u : 2 * u], h_prev, out=rh[t])
        xp.matmul(w[2 * u :], rh[t], out=tmp)
        zt[2 * u :] += tmp
        _new_state(zt, at, h_prev, h[t + 1, :u], tmp, h_gate)


def _update_gradients(d, zt, at, h_prev, dh, gates, tmp) -> None:
    """d (3u, N) = d gates / dz, then the update gate's and candidate's rows times their
    upstream gradients: z: dh (h_{t-1} - hh); hh: dh (1 - z)."""
    u = len(dh)
    gates.derivative(zt, at, out=d)
    backend.xp.subtract(h_prev, at[2 * u :], out=tmp)
    tmp *= dh
    d[:u] *= tmp
    backend.xp.subtract(1.0, at[:u], out=tmp)
    tmp *= dh
    d[2 * u :] *= tmp


def gru_backward_reset_after(dz, dh, dseq, z, a, h, rec, drec, w, gates, unscale, carries):
    """dz (T, 3u, N) and drec (T, 3u, N), the gradient of the recurrent term, from dh (u, N)
    and dseq (T, u, N) or None; ``unscale`` undoes the candidate rows' scale in rec."""
    xp, u = backend.xp, len(dh)
    tmp = xp.empty_like(dh)
    for t in reversed(range(len(z))):
        if dseq is not None:
            dh += dseq[t]
        d, at = dz[t], a[t]
        _update_gradients(d, z[t], at, h[t, :u], dh, gates, tmp)
        xp.multiply(d[2 * u :], rec[t, 2 * u :], out=tmp)
        if unscale != 1.0:
            tmp *= unscale
        d[u : 2 * u] *= tmp  # r: d_hh (U_h^T h + b_rh)
        drec[t, : 2 * u] = d[: 2 * u]
        xp.multiply(d[2 * u :], at[u : 2 * u], out=drec[t, 2 * u :])
        if carries(t):
            xp.multiply(dh, at[:u], out=tmp)
            xp.matmul(w, drec[t], out=dh)
            dh += tmp
        else:
            dh.fill(0)


def gru_backward_reset_before(dz, dh, dseq, z, a, h, w, gates, carries):
    """dz (T, 3u, N) from dh (u, N) and dseq (T, u, N) or None."""
    xp, u = backend.xp, len(dh)
    tmp, drh = xp.empty_like(dh), xp.empty_like(dh)
    for t in reversed(range(len(z))):
        if dseq is not None:
            dh += dseq[t]
        d, at, h_prev = dz[t], a[t], h[t, :u]
        _update_gradients(d, z[t], at, h_prev, dh, gates, tmp)
        xp.matmul(w[:, 2 * u :], d[2 * u :], out=drh)  # d loss / d(r * h_{t-1})
        xp.multiply(drh, h_prev, out=tmp)
        d[u : 2 * u] *= tmp  # r: d(r h) h_{t-1}
        if carries(t):
            drh *= at[u : 2 * u]
            xp.multiply(dh, at[:u], out=tmp)
            xp.matmul(w[:, : 2 * u], d[: 2 * u], out=dh)
            dh += tmp
            dh += drh
        else:
            dh.fill(0)
