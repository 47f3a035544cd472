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

from bptrain.nn import backend
from bptrain.nn.kernels import partner
from bptrain.nn.kernels.cblas import NO_TRANS, TRANS

# Weights below this size are not split: their GEMMs are shorter than the hand-over (~2 us).
MIN_SIZE = 1 << 14


class _Plan:
    """A shared matrix W (rows, cols), split at row k: the byte offsets of the partner's rows
    of W (and of its gradient) and of its columns of an input x (n, rows), and a kept buffer
    per batch size for its forward half."""

    def __init__(self, p):
        self.value, self.grad = p.value, p.grad  # (a parameter rebound since is not shared)
        self.rows, self.cols = p.shape
        self.k, itemsize = self.rows // 2, p.value.itemsize
        self.rows_at, self.cols_at = self.k * self.cols * itemsize, self.k * itemsize
        self.theirs: dict = {}

    def buffer(self, n: int):
        """The array (n, cols) the partner writes its forward half into."""
        if n not in self.theirs:
            self.theirs[n] = np.empty((n, self.cols), dtype=self.value.dtype)
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


class _Sharing:
    """What ``sharing`` set up, in this process: the partner (or ``_Alone``), the plans by
    parameter, the flat buffer's index ranges each core updates, and the pace."""

    def __init__(self, helper, plans: dict, theirs: list, size: int, mode: str):
        self.helper, self.plans, self.size, self.pid = helper, plans, size, os.getpid()
        bounds = [0, *(i for r in theirs for i in r), size]
        mine = [(lo, hi) for lo, hi in zip(bounds[::2], bounds[1::2], strict=True) if hi > lo]
        # each core's index ranges as the compiled loops take them: [count, lo, hi, ...]
        self.posted, self.mine = (_ranges(r) for r in (theirs, mine))
        self.pace, self.on = _Pace(mode), mode != "here"


def _ranges(pairs: list) -> np.ndarray:
    """[count, lo, hi, lo, hi, ...] of the (lo, hi) index ranges ``pairs``, as int64."""
    return np.array([len(pairs), *(i for r in pairs for i in r)], dtype=np.int64)


_active: _Sharing | None = None


@contextlib.contextmanager
def sharing(params, flat_value, mode: str = "auto") -> Iterator[str | None]:
    """Within the block, the ``splittable`` matrices among ``params`` (views of the 1-D
    ``flat_value``, which the optimizer updates) are split, their second halves computed by a
    partner thread on a second core where one can run (``can_partner``). Yields "partner",
    "here" (the splits computed by this thread alone: the same values) or None (nothing split).
    ``mode``: "auto" (a partner paced by ``_Pace``), "partner" (always) or "here" (no partner)."""
    global _active
    shared = [p for p in params if splittable(p) and p.value.dtype == flat_value.dtype]
    if not shared or _active is not None:
        yield None
        return
    plans, theirs = {}, []
    for p in shared:
        plans[id(p)] = plan = _Plan(p)
        start = (p.value.ctypes.data - flat_value.ctypes.data) // flat_value.itemsize
        theirs.append((start + plan.k * plan.cols, start + p.size))
    if mode != "here" and not can_partner():
        mode = "here"
    cores = None  # this thread's cores, where it is moved off the partner's
    if mode == "here":
        helper = _Alone(flat_value.dtype)
    else:
        cores = os.sched_getaffinity(0)
        helper = partner.Partner(flat_value.dtype, core=max(cores))
        # This thread keeps off the partner's core: left to the scheduler, it could stay there
        # beside the polling partner, and the pace's first probe then found the partner slower
        # (in 6 of 6 fresh processes of the MNIST MLP's step loop, against 0 of 9 pinned).
        os.sched_setaffinity(0, cores - {helper.core})
    theirs = sorted(theirs)[: partner.MAX_RANGES]  # (any others are this thread's to update)
    _active = _Sharing(helper, plans, theirs, flat_value.size, mode)
    try:
        yield "here" if mode == "here" else "partner"
    finally:
        _active = None
        helper.stop()
        if cores is not None:
            os.sched_setaffinity(0, cores)


def _plan(p, a) -> tuple:
    """(sharing, plan) when ``p`` is shared in this process and ``a`` (the other operand) is a
    C-contiguous 2-D array of its dtype, else (None, None)."""
    s = _active
    if s is None or s.pid != os.getpid():
        return None, None
    plan = s.plans.get(id(p))
    if plan is None or p.value is not plan.value or p.grad is not plan.grad:
        return None, None
    if a.ndim != 2 or a.dtype != p.value.dtype or not a.flags.c_contiguous:
        return None, None
    return s, plan


def matmul(x, p):
    """``x @ p.value`` for x (n, rows), the rows from k on by the partner."""
    s, plan = _plan(p, x)
    w = p.value
    if s is None or x.shape[1] != plan.rows:
        return x @ w
    (n, rows), k, cols = x.shape, plan.k, plan.cols
    theirs = plan.buffer(n)
    if s.on:  # theirs = x[:, k:] @ w[k:]
        args = (x, plan.cols_at, rows, w, plan.rows_at, cols, theirs, 0, cols)
        s.helper.gemm(NO_TRANS, NO_TRANS, n, cols, rows - k, *args)
    else:  # the same BLAS call (NumPy passes these views to sgemm as they are)
        np.matmul(x[:, k:], w[k:], out=theirs)
    out = np.matmul(x[:, :k], w[:k])
    s.helper.wait()
    out += theirs
    return out


def matmul_t(dz, p):
    """``dz @ p.value.T`` for dz (n, cols): the input gradient, its columns from k on by the
    partner."""
    s, plan = _plan(p, dz)
    w = p.value
    if s is None or dz.shape[1] != plan.cols:
        return dz @ w.T
    (n, cols), k, rows = dz.shape, plan.k, plan.rows
    out = np.empty((n, rows), dtype=w.dtype)
    if s.on:  # out[:, k:] = dz @ w[k:].T
        s.helper.gemm(NO_TRANS, TRANS, n, rows - k, cols, dz, 0, cols, w, plan.rows_at, cols,
                      out, plan.cols_at, rows)  # fmt: skip
    else:
        np.matmul(dz, w[k:].T, out=out[:, k:])
    np.matmul(dz, w[:k].T, out=out[:, :k])
    s.helper.wait()
    return out


def weight_gradient(p, x, dz) -> bool:
    """Write ``p.grad = x.T @ dz`` for x (n, rows), dz (n, cols), the rows from k on by the
    partner, if ``p`` is shared and its gradient ``fresh`` (``kernels.grads``); returns
    whether it did (else the caller adds the product itself)."""
    s, plan = _plan(p, x)
    if s is None or not p.fresh or x.shape[1] != plan.rows:
        return False
    if dz.dtype != x.dtype or not dz.flags.c_contiguous or dz.shape != (len(x), plan.cols):
        return False
    (n, rows), k, cols = x.shape, plan.k, plan.cols
    if s.on:  # grad[k:] = x[:, k:].T @ dz
        s.helper.gemm(TRANS, NO_TRANS, rows - k, cols, n, x, plan.cols_at, rows, dz, 0, cols,
                      p.grad, plan.rows_at, cols)  # fmt: skip
    else:
        np.matmul(x[:, k:].T, dz, out=p.grad[k:])
    np.matmul(x[:, :k].T, dz, out=p.grad[:k])
    s.helper.wait()
    p.fresh = False
    return True


def update(op: int, loop, arrays: tuple, scalars: tuple) -> bool:
    """Run an optimizer's compiled ``loop`` (``op``: ``partner.ADAM``, ``SGD`` or ``RMSPROP``;
    ``kernels.adam``, ``kernels.sgd_rmsprop``) over its flat buffers ``arrays`` (w, g, then its
    slots, 1-D: ``compiled.flat``) with ``scalars`` (of w's dtype). Within ``sharing``, on its
    flat buffer, the partner updates the shared matrices' second halves meanwhile, and this
    thread the rest, each over its index ranges in one compiled call (``partner._updated_loop``,
    which runs ``op``'s loop, the same as ``loop``, over each range); returns whether it did
    (the same bits either way: the update is elementwise)."""
    s, w = _active, arrays[0]
    shared = s is not None and s.pid == os.getpid() and w.size == s.size
    partnered = shared and s.on and w.dtype == s.helper.dtype
    if partnered:
        s.helper.update(op, arrays, scalars, s.posted)
        s.helper.update_here(op, arrays, s.mine)  # (``loop`` over this thread's ranges)
        s.helper.wait()
    else:
        loop(*arrays, *scalars)
    if shared:
        s.on = s.pace.step()
    return partnered


def squared_norm(g) -> float:
    """``backend.squared_norm(g)`` (a finiteness check's sum), for the optimizer's flat
    gradient ``g`` within ``sharing`` computed by both cores, each over its own ranges, which it
    wrote and holds in its cache (6-8 against 13-14 us a step of the MNIST MLP's ``fit``: the
    one-core BLAS dot read the partner's half across cores). The sum's order differs from the
    dot's, so only its finiteness is the same, which is what the trainer asks."""
    s = _active
    if s is None or s.pid != os.getpid() or not s.on or g.size != s.size:
        return backend.squared_norm(g)
    if not s.helper.squares(g, s.posted):  # (before the first update bound it)
        return backend.squared_norm(g)
    total = s.helper.squares_here(g, s.mine)
    s.helper.wait()
    return total + float(s.helper.result[0])
