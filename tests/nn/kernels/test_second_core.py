"""``kernels.second_core`` and its partner thread: each shared pass against the one-core
computation, the same bits whoever computes the partner's halves, Adam bit for bit, finite
differences through a shared Dense layer in float64, and the partner's life (parking, waking,
stopping)."""

import contextlib
import os
import threading
import time

import numpy as np
import pytest

from bptrain.nn import SGD, Adam, Dense, Model, RMSprop, Sequential
from bptrain.nn.gradcheck import numeric_gradient, relative_error
from bptrain.nn.kernels import adam as adam_kernels
from bptrain.nn.kernels import blas_threads, partner, second_core
from bptrain.nn.parameter import Parameter

pytestmark = pytest.mark.skipif(
    not partner.available(), reason="the partner needs Linux on x86-64, NumPy's OpenBLAS, Numba"
)


def shared_weight(dtype, rows=200, cols=96, seed=0):
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal(rows * cols + 7).astype(dtype)
    p = Parameter(flat[: rows * cols].reshape(rows, cols))
    p.value = flat[: rows * cols].reshape(rows, cols)  # a view of the flat buffer, as in Model
    return p, flat


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_each_pass_equals_one_core_to_round_off(dtype, tol):
    p, flat = shared_weight(dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((33, 200)).astype(dtype)
    dz = rng.standard_normal((33, 96)).astype(dtype)
    with second_core.sharing([p], flat, mode="partner") as on:
        assert on == "partner"
        z = second_core.matmul(x, p)
        dx = second_core.matmul_t(dz, p)
        p.fresh = True
        assert second_core.weight_gradient(p, x, dz)
        assert not p.fresh
    np.testing.assert_allclose(z, x @ p.value, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, dz @ p.value.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(p.grad, x.T @ dz, rtol=tol, atol=tol)


def test_outside_sharing_nothing_is_split():
    p, _ = shared_weight(np.float32)
    x = np.random.default_rng(1).standard_normal((8, 200)).astype(np.float32)
    np.testing.assert_array_equal(second_core.matmul(x, p), x @ p.value)
    p.fresh = True
    assert not second_core.weight_gradient(p, x, x[:, :96].copy())  # the caller adds it
    ran = []
    arrays = (p.value, p.grad, p.grad, p.grad)
    assert not second_core.update(partner.ADAM, lambda *a: ran.append(a), arrays, ())
    assert len(ran) == 1  # the whole loop, on this thread


def test_a_gradient_that_is_not_fresh_is_left_to_the_caller():
    p, flat = shared_weight(np.float32)
    x = np.ones((4, 200), np.float32)
    with second_core.sharing([p], flat, mode="partner"):
        p.fresh = False
        assert not second_core.weight_gradient(p, x, np.ones((4, 96), np.float32))


def train(mode: str, steps: int = 12, dtype=np.float32, optimizer=None) -> np.ndarray:
    """A 3-layer MLP whose 160x128 middle kernel is shared (its input gradient too), trained
    with ``optimizer`` (Adam) within ``sharing(mode)``; returns the flat weights."""
    network = Sequential([Dense(160, "relu"), Dense(128, "relu"), Dense(3)])
    network.build((20,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", optimizer or Adam(1e-2))
    model.cast(dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((steps, 32, 20)).astype(dtype)
    y = rng.integers(0, 3, (steps, 32))
    params = model.parameters()
    shared = [p for p in params if second_core.splittable(p)]
    assert [p.shape for p in shared] == [(160, 128)]
    with second_core.sharing(shared, params.flat_value, mode=mode) as on:
        assert on == ("here" if mode == "here" else "partner")
        for i in range(steps):
            model.train_step(x[i], y[i])
    return params.flat_value.copy()


def test_the_same_bits_whoever_computes_the_partners_halves():
    here = train("here")
    np.testing.assert_array_equal(train("partner"), here)
    np.testing.assert_array_equal(train("auto"), here)  # the pace switches: same bits
    np.testing.assert_array_equal(train("partner"), here)  # and again: repeatable
    one_core = train_without_sharing()
    # Round-off only (Adam's steps of ~lr = 0.01 can amplify a last-bit difference in a gradient
    # near zero into a weight change of a fraction of lr: 1.5e-4 here).
    np.testing.assert_allclose(here, one_core, atol=1e-3)
    assert np.abs(here - one_core).mean() < 1e-6


@pytest.mark.parametrize(
    "make",
    [lambda: SGD(0.05, momentum=0.9), lambda: SGD(0.05), lambda: RMSprop(1e-3)],
    ids=["sgd-momentum", "sgd", "rmsprop"],
)
def test_sgd_and_rmsprop_updates_split_to_the_same_bits(make):
    here = train("here", optimizer=make())
    np.testing.assert_array_equal(train("partner", optimizer=make()), here)
    assert not np.array_equal(here, train("here", steps=1, optimizer=make()))  # it trained


def train_without_sharing(steps: int = 12) -> np.ndarray:
    """``train`` with nothing split: ``sharing`` replaced by a block that splits nothing."""
    original = second_core.sharing
    try:
        second_core.sharing = lambda *a, **k: contextlib.nullcontext("here")
        return train("here", steps)
    finally:
        second_core.sharing = original


def test_adam_halves_are_the_reference_bits():
    rng = np.random.default_rng(3)
    p, flat = shared_weight(np.float32, rows=600, cols=128)  # Adam's compiled pass: >= 64K
    w, g, m = flat, rng.standard_normal(flat.size).astype(np.float32), np.zeros_like(flat)
    v = np.zeros_like(flat)
    plain = [a.copy() for a in (w, g, m, v)]
    with second_core.sharing([p], flat, mode="partner"):
        for _ in range(3):
            adam_kernels.adam_update(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, None)
        assert second_core._active.helper.box[partner.DONE] > 1  # it did its half
    tmp = np.empty_like(flat)
    for _ in range(3):
        adam_kernels.adam_reference(*plain, 1e-3, 0.9, 0.999, 1e-7, tmp)
    for fast, ref in zip((w, m, v), (plain[0], plain[2], plain[3]), strict=True):
        np.testing.assert_array_equal(fast, ref)


def test_finite_differences_through_a_shared_dense_layer_in_float64():
    network = Sequential([Dense(160, "tanh"), Dense(128, "tanh"), Dense(3)])
    network.build((5,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam())
    model.cast(np.float64)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    params = model.parameters()
    shared = [p for p in params if second_core.splittable(p)]

    def loss():
        return model.step_loss.forward(model.forward(x, training=True), y)

    with second_core.sharing(shared, params.flat_value, mode="partner") as on:
        assert on == "partner"
        model.compute_gradients(x, y)  # forward, backward: every pass shared
        for p in (shared[0], params[0]):  # the shared kernel (whose dx is shared too), the first
            picked = rng.choice(p.size, 40, replace=False)
            numeric = numeric_gradient(loss, p.value, picked, 1e-6)
            assert relative_error(p.grad.reshape(-1)[picked], numeric) < 1e-6  # as check_model


def test_the_partner_parks_when_idle_and_wakes_for_work():
    helper = partner.Partner(np.float32, core=max(partner.os.sched_getaffinity(0)))
    try:
        deadline = time.monotonic() + 5
        while not helper.box[partner.PARKED] and time.monotonic() < deadline:
            time.sleep(0.005)
        assert helper.box[partner.PARKED]  # ~12 ms of polling, then a condition variable
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        b, c = np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32)
        helper.gemm(111, 111, 2, 4, 3, a, 0, 3, b, 0, 4, c, 0, 4)
        helper.wait()
        np.testing.assert_array_equal(c, a @ b)
    finally:
        helper.stop()
    assert not helper._thread.is_alive()


def test_sharing_declines_what_it_cannot_share():
    small = Parameter(np.zeros((10, 10), np.float32))
    with second_core.sharing([small], small.value.reshape(-1)) as on:
        assert on is None  # below MIN_SIZE
    p, flat = shared_weight(np.float32)
    with second_core.sharing([p], flat) as on, second_core.sharing([p], flat) as inner:
        assert on == "partner" and inner is None  # one sharing at a time


def test_this_thread_keeps_off_the_partners_core_while_sharing():
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        pytest.skip("the partner needs a second core")
    p, flat = shared_weight(np.float32)
    with second_core.sharing([p], flat, mode="partner") as on:
        assert on == "partner"
        assert os.sched_getaffinity(0) == cores - {max(cores)}  # the partner's is the last
        # a thread pool made meanwhile still runs on every core
        blas_threads._pool.clear()
        seen = []
        blas_threads.on_cores(lambda k: seen.append(os.sched_getaffinity(0)), 2)
        assert cores - {max(cores)} in seen and cores in seen
    assert os.sched_getaffinity(0) == cores


def test_here_starts_no_thread():
    p, flat = shared_weight(np.float32)
    before = threading.active_count()
    with second_core.sharing([p], flat, mode="here") as on:
        assert on == "here" and threading.active_count() == before
        x = np.ones((3, 200), np.float32)
        np.testing.assert_allclose(second_core.matmul(x, p), x @ p.value, rtol=1e-5)


def test_the_pace_keeps_the_faster_way(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(second_core.time, "perf_counter", lambda: clock[0])
    pace = second_core._Pace("auto")
    chosen = []
    for _ in range(2 * pace.PROBE + 10):
        clock[0] += 1.0 if pace.on else 0.5  # here is faster this time
        chosen.append(pace.step())
    assert chosen[: pace.PROBE - 1] == [True] * (pace.PROBE - 1)  # probing with the partner
    assert chosen[pace.PROBE] is False  # probing without
    assert chosen[-5:] == [False] * 5  # kept: the faster
    assert pace.keep == 2 * pace.KEEP  # and probed half as often while the partner loses


def test_the_squared_norm_is_shared_once_the_update_bound_the_gradient():
    rng = np.random.default_rng(5)
    p, flat = shared_weight(np.float32, rows=600, cols=128)
    g, m, v = (rng.standard_normal(flat.size).astype(np.float32) for _ in range(3))
    one_core = float(np.dot(g.astype(np.float64), g))
    with second_core.sharing([p], flat, mode="partner"):
        assert second_core.squared_norm(g) == pytest.approx(one_core, rel=1e-5)  # (not bound)
        adam_kernels.adam_update(flat, g, m, v, 1e-3, 0.9, 0.999, 1e-7, None)  # binds g
        done = second_core._active.helper.box[partner.DONE]
        assert second_core.squared_norm(g) == pytest.approx(one_core, rel=1e-5)
        assert second_core._active.helper.box[partner.DONE] == done + 1  # the partner summed
        theirs = second_core._active.posted  # [count, lo, hi, ...]: the partner's ranges
        for at in (int(theirs[1]), 0):  # an inf in the partner's part, a NaN in this thread's
            g[at] = np.inf if at else np.nan
            assert not np.isfinite(second_core.squared_norm(g))
            g[at] = 1.0
    assert second_core.squared_norm(g) == pytest.approx(float(np.dot(g, g)), rel=1e-5)  # after
