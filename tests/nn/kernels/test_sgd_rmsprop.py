"""SGD's and RMSprop's fused one-pass updates (``kernels.sgd_rmsprop``) against their NumPy
references: the same bits, step after step, in float32 and float64."""

import numpy as np
import pytest

from bptrain.nn import SGD, RMSprop
from bptrain.nn.kernels import compiled, sgd_rmsprop

pytest.importorskip("numba")


def states(dtype, n=1000, seed=0):
    """(w, g, v): random weights and gradients (some exact zeros), a slot from zero."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n) * rng.choice([0.0, 1e-4, 1.0, 30.0], n)
    return w, g.astype(dtype), np.zeros(n, dtype)


def steps(update, arrays, dtype):
    rng = np.random.default_rng(1)
    for _ in range(5):
        arrays[1][...] = (rng.standard_normal(len(arrays[0])) * 0.1).astype(dtype)
        update(*arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_fused_sgd_is_the_reference_bit_for_bit(dtype, momentum, nesterov):
    loop = compiled.compiled(sgd_rmsprop._sgd_loop)
    s = np.dtype(dtype).type
    fused, plain = states(dtype), states(dtype)
    steps(lambda w, g, v: loop(w, g, v, s(0.05), s(momentum), s(nesterov)), fused, dtype)
    steps(
        lambda w, g, v: sgd_rmsprop.sgd_reference(w, g, v, 0.05, momentum, nesterov), plain, dtype
    )
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fused[0], states(dtype)[0])  # the weights did move


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_rmsprop_is_the_reference_bit_for_bit(dtype):
    loop = compiled.compiled(sgd_rmsprop._rmsprop_loop)
    s = np.dtype(dtype).type
    fused, plain = states(dtype), states(dtype)
    steps(lambda w, g, v: loop(w, g, v, s(1e-3), s(0.9), s(1 - 0.9), s(1e-7)), fused, dtype)
    steps(lambda w, g, v: sgd_rmsprop.rmsprop_reference(w, g, v, 1e-3, 0.9, 1e-7), plain, dtype)
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "optimizer", [SGD(0.05), SGD(0.05, momentum=0.9, nesterov=True), RMSprop(1e-3)]
)
def test_the_optimizers_take_the_fused_pass_where_it_can_run(monkeypatch, optimizer):
    n = compiled.MIN_SIZE
    w, g, _ = states(np.float32, n=n)
    slots = {name: np.zeros(n, np.float32) for name in optimizer.slot_names}
    expected_w = w.copy()
    expected_slots = {k: v.copy() for k, v in slots.items()}
    velocity = expected_slots.get("velocity", sgd_rmsprop.no_slot(np.float32))
    if isinstance(optimizer, SGD):
        sgd_rmsprop.sgd_reference(expected_w, g, velocity, 0.05, optimizer.momentum, True)
    else:
        sgd_rmsprop.rmsprop_reference(expected_w, g, velocity, 1e-3, 0.9, 1e-7)
    for name in ("sgd_reference", "rmsprop_reference"):  # the fused pass runs, or this fails
        monkeypatch.setattr(sgd_rmsprop, name, None)
    optimizer.update(w, g, slots, optimizer.learning_rate)
    np.testing.assert_array_equal(w, expected_w)
    for name, value in slots.items():
        np.testing.assert_array_equal(value, expected_slots[name])
