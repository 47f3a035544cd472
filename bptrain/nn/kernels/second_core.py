"""A Dense layer's GEMMs and Adam's update shared by two cores, each owning half of the weights.

On one core the MNIST MLP's step is two GEMMs of 32x784x128 (about 150 of its 245 us), Adam's
pass (32 us) and small work. Within ``sharing``, a weight matrix W (rows, cols) that is worth
it (``MIN_SIZE``) is split at row k = rows // 2, and the partner thread on the second core
(``kernels.partner``) computes the half from row k on, in every pass:

    forward          z = x[:, :k] @ W[:k]  +  x[:, k:] @ W[k:]          (``matmul``)
    weight gradient  dW[:k] = x[:, :k].T @ dz  |  dW[k:] = x[:, k:].T @ dz   (``weight_gradient``)
    input gradient   dx[:, :k] = dz @ W[:k].T  |  dx[:, k:] = dz @ W[k:].T   (``matmul_t``)
    the update       w and its slots (Adam's m, v; SGD's velocity; RMSprop's) of rows [:k]
                     |  of rows [k:]                                      (``update``)

so each core reads and writes only its own rows of W, dW and Adam's moments, which stay in its
cache; the cores exchange only the small x, dz and partial z. The training thread computes its
half meanwhile and then waits for the partner's. Where the partner's core proves slow to share,
the training thread computes the partner's halves itself, with the same BLAS calls (``_Pace``):
the values are the same bits either way. They differ from the unsplit computation by float
round-off (the forward's sum of two partial products), deterministically: a run and its resume
agree bit for bit. Adam's update is elementwise, the same bits however it is split.

Each function falls back to the unsplit computation when nothing is shared: outside
``sharing``, for a parameter it did not split (or one rebound since), in a forked process, or
for an operand that is not a C-contiguous matrix of the weights' dtype.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import numpy as np

from bptrain.nn.kernels import partner
from bptrain.nn.kernels.cblas import NO_TRANS, TRANS
from bptrain.nn.kernels.partner import ADAM, RMSPROP, SGD  # noqa: F401 (the updates' names)

# Weights below this size are not split: their GEMMs are shorter than the hand-over (~2 us).
MIN_SIZE = 1 << 14
# "partner", "pid", "plans" {id(parameter): _Plan}, "ranges" (Adam's), "pace", "on"
_state: dict = {}


class _Plan:
    """A shared matrix W (rows, cols), split at row k: the addresses of the partner's rows of
    W and of its gradient, and a kept buffer per batch size for its forward half."""

    def __init__(self, p):
        self.value, self.grad = p.value, p.grad  # (a parameter rebound since is not shared)
        self.rows, self.cols = p.shape
        self.k, self.itemsize = self.rows // 2, p.value.itemsize
        self.w_at = p.value[self.k :].ctypes.data
        self.grad_at = p.grad[self.k :].ctypes.data
        self.theirs: dict = {}

    def buffer(self, n: int):
        """(array (n, cols), its address) the partner writes its forward half into."""
        if n not in self.theirs:
            out = np.empty((n, self.cols), dtype=np.dtype(f"f{self.itemsize}"))
            self.theirs[n] = (out, out.ctypes.data)
        return self.theirs[n]


class _Pace:
    """Whether the partner computes its halves (else the training thread computes them too,
    with the same BLAS calls: the same bits either way), chosen by the measured step time:
    ``PROBE`` steps with it, ``PROBE`` without, the faster kept for ``keep`` steps, then probed
    again; ``keep`` starts at ``KEEP`` and doubles (up to ``MAX_KEEP``) each time the partner
    loses again, as a probe with a busy partner core costs. On the 2-core dev machine some
    processes found the partner's core slow to share (a step of the MNIST MLP 0.26-0.33 ms
    with it against 0.25 without; others 0.19), and beside a busy process it always was."""

    PROBE, KEEP, MAX_KEEP = 48, 2000, 64000

    def __init__(self, mode: str):
        self.mode, self.i, self.last, self.keep = mode, 0, None, self.KEEP
        self.times: dict = {True: [], False: []}
        self.on = mode != "here"

    def step(self) -> bool:
        """Called once a step (by ``update``); whether the next step uses the partner."""
        now, probe = time.perf_counter(), 2 * self.PROBE
        if self.mode != "auto":
            return self.on
        if self.last is not None and self.i % self.PROBE > 1 and self.i < probe:
            self.times[self.on].append(now - self.last)  # (not the first two of a phase)
        self.last, self.i = now, (self.i + 1) % (probe + self.keep)
        if self.i < probe:
            self.on = self.i < self.PROBE
        elif self.i == probe:
            on, off = (float(np.median(self.times[b])) for b in (True, False))
            self.on, self.times = on <= off, {True: [], False: []}
            self.keep = self.KEEP if self.on else min(2 * self.keep, self.MAX_KEEP)
        return self.on


def splittable(p) -> bool:
    """Whether ``sharing`` splits parameter ``p``: a float matrix of at least ``MIN_SIZE``."""
    dtype_ok = p.value.dtype in (np.float32, np.float64)
    return p.value.ndim == 2 and p.value.shape[0] >= 2 and p.size >= MIN_SIZE and dtype_ok


def can_partner() -> bool:
    """Whether a partner thread can run here (``partner.available``) beside this thread, on
    two cores this process may use."""
    return partner.available() and len(os.sched_getaffinity(0)) >= 2


class _Alone:
    """The partner's place where none runs: this thread computes its halves."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def wait(self) -> None:
        pass

    def stop(self) -> None:
        pass


@contextlib.contextmanager
def sharing(params, flat_value, mode: str = "auto") -> Iterator[str | None]:
    """Within the block, the ``splittable`` matrices among ``params`` (views of the 1-D
    ``flat_value``, which Adam updates) are split, their second halves computed by a partner
    thread on a second core where one can run (``can_partner``). Yields "partner", "here" (the
    splits computed by this thread alone: the same values) or None (nothing split). ``mode``:
    "auto" (a partner paced by ``_Pace``), "partner" (always) or "here" (no partner)."""
    shared = [p for p in params if splittable(p) and p.value.dtype == flat_value.dtype]
    if not shared or _state:
        yield None
        return
    plans, ranges = {}, []
    for p in shared:
        plans[id(p)] = plan = _Plan(p)
        start = (p.value.ctypes.data - flat_value.ctypes.data) // flat_value.itemsize
        ranges.append((start + plan.k * plan.cols, start + p.size))
    ranges = sorted(ranges)[: partner.MAX_RANGES]
    if mode != "here" and not can_partner():
        mode = "here"
    if mode == "here":
        helper = _Alone(flat_value.dtype)
    else:
        helper = partner.Partner(flat_value.dtype, core=max(os.sched_getaffinity(0)))
    _state.update(partner=helper, pid=os.getpid(), plans=plans, ranges=ranges)
    _state.update(pace=_Pace(mode), on=mode != "here")
    _state["posted_ranges"] = [len(ranges), *(i for r in ranges for i in r)]
    try:
        yield "here" if mode == "here" else "partner"
    finally:
        _state.clear()
        helper.stop()


def _plan(p, a) -> tuple:
    """(partner, plan) when ``p`` is shared in this process and ``a`` (the other operand) is a
    C-contiguous 2-D array of its dtype, else (None, None)."""
    plan = _state.get("plans", {}).get(id(p))
    if plan is None or _state["pid"] != os.getpid():
        return None, None
    if p.value is not plan.value or p.grad is not plan.grad:
        return None, None
    if a.ndim != 2 or a.dtype != p.value.dtype or not a.flags.c_contiguous:
        return None, None
    return _state["partner"], plan


def matmul(x, p):
    """``x @ p.value`` for x (n, rows), the rows from k on by the partner."""
    helper, plan = _plan(p, x)
    w = p.value
    if helper is None or x.shape[1] != plan.rows:
        return x @ w
    (n, rows), k, cols = x.shape, plan.k, plan.cols
    theirs, address = plan.buffer(n)
    if _state["on"]:
        xk = x.ctypes.data + k * plan.itemsize
        helper.gemm(
            [NO_TRANS, NO_TRANS, n, cols, rows - k, xk, rows, plan.w_at, cols, address, cols]
        )
    else:  # the same BLAS call (NumPy passes these views to sgemm as they are)
        np.matmul(x[:, k:], w[k:], out=theirs)
    out = np.matmul(x[:, :k], w[:k])
    helper.wait()
    out += theirs
    return out


def matmul_t(dz, p):
    """``dz @ p.value.T`` for dz (n, cols): the input gradient, its columns from k on by the
    partner."""
    helper, plan = _plan(p, dz)
    w = p.value
    if helper is None or dz.shape[1] != plan.cols:
        return dz @ w.T
    (n, cols), k, rows = dz.shape, plan.k, plan.rows
    out = np.empty((n, rows), dtype=w.dtype)
    if _state["on"]:
        outk = out.ctypes.data + k * plan.itemsize
        helper.gemm(
            [NO_TRANS, TRANS, n, rows - k, cols, dz.ctypes.data, cols, plan.w_at, cols, outk, rows]
        )
    else:
        np.matmul(dz, w[k:].T, out=out[:, k:])
    np.matmul(dz, w[:k].T, out=out[:, :k])
    helper.wait()
    return out


def weight_gradient(p, x, dz) -> bool:
    """Write ``p.grad = x.T @ dz`` for x (n, rows), dz (n, cols), the rows from k on by the
    partner, if ``p`` is shared and its gradient ``fresh`` (``kernels.grads``); returns
    whether it did (else the caller adds the product itself)."""
    helper, plan = _plan(p, x)
    if helper is None or not p.fresh or x.shape[1] != plan.rows:
        return False
    if dz.dtype != x.dtype or not dz.flags.c_contiguous or dz.shape != (len(x), plan.cols):
        return False
    (n, rows), k, cols = x.shape, plan.k, plan.cols
    if _state["on"]:
        xk = x.ctypes.data + k * plan.itemsize
        helper.gemm(
            [TRANS, NO_TRANS, rows - k, cols, n, xk, rows, dz.ctypes.data, cols, plan.grad_at, cols]
        )
    else:
        np.matmul(x[:, k:].T, dz, out=p.grad[k:])
    np.matmul(x[:, :k].T, dz, out=p.grad[:k])
    helper.wait()
    p.fresh = False
    return True


def update(op: int, loop, arrays: tuple, scalars: tuple) -> bool:
    """An optimizer's compiled ``loop`` (``ADAM``, ``SGD`` or ``RMSPROP``: ``kernels.adam``,
    ``kernels.sgd_rmsprop``) over its flat buffers ``arrays`` (w, g, then its slots) with
    ``scalars`` (of w's dtype), the shared matrices' second halves by the partner, if ``sharing``
    is on; returns whether it ran (else the caller runs the loop)."""
    helper, w = _state.get("partner"), arrays[0]
    if helper is None or _state["pid"] != os.getpid() or w.dtype != helper.dtype:
        return False
    ranges = _state["ranges"]
    if ranges[-1][1] > w.size:
        return False
    if _state["on"]:
        helper.update(op, arrays, scalars, _state["posted_ranges"])
        start = 0
        for lo, hi in [*ranges, (w.size, w.size)]:
            if lo > start:
                loop(*(a[start:lo] for a in arrays), *scalars)
            start = hi
        helper.wait()
    else:  # elementwise: one pass gives the bits of the halves
        loop(*arrays, *scalars)
    _state["on"] = _state["pace"].step()
    return True
