"""Adam's fused one-pass update (``kernels.adam.adam_fused``) against its NumPy reference:
the same bits, step after step, in float32 and float64."""

import math
import sys

import numpy as np
import pytest

from bptrain.nn import backend
from bptrain.nn.kernels import adam, compiled
from bptrain.nn.kernels.scratch import Scratch

pytest.importorskip("numba")


def states(dtype, n=1000, seed=0):
    """(w, g, m, v): random weights and gradients (some exact zeros), moments from zero."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype) * rng.choice([0.0, 1e-4, 1.0, 30.0], n)
    return w, g.astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_update_is_the_reference_bit_for_bit(dtype):
    fused, plain = states(dtype), states(dtype)
    rng = np.random.default_rng(1)
    for t in range(1, 6):
        g = (rng.standard_normal(len(fused[0])) * 0.1).astype(dtype)
        fused[1][...] = plain[1][...] = g
        lr_t = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        adam.adam_fused(*fused, lr_t, 0.9, 0.999, 1e-7)
        adam.adam_reference(*plain, lr_t, 0.9, 0.999, 1e-7, np.empty_like(g))
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(fused[0], states(dtype)[0])  # the weights did move


def test_update_takes_the_fused_pass_where_it_can_run_and_pays(monkeypatch):
    w, g, m, v = states(np.float32, n=compiled.MIN_SIZE)
    expected = [a.copy() for a in (w, g, m, v)]
    adam.adam_reference(*expected, 0.1, 0.9, 0.999, 1e-7, np.empty_like(w))
    monkeypatch.setattr(adam, "adam_reference", None)  # the fused pass runs, or this fails
    adam.adam_update(w, g, m, v, 0.1, 0.9, 0.999, 1e-7, Scratch())
    for a, b in zip((w, g, m, v), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_update_takes_the_reference_elsewhere(monkeypatch):
    w, g, m, v = states(np.float32, n=compiled.MIN_SIZE)
    loop = adam._adam_loop
    assert compiled.usable(loop, (w, g, m, v), w.size)
    assert not compiled.usable(loop, (w[::2], g[::2], m[::2], v[::2]), w.size)  # strided
    assert not compiled.usable(loop, (w, g, m, v), compiled.MIN_SIZE - 1)  # too small to pay
    monkeypatch.setattr(backend, "name", "cupy")  # another backend runs the plain passes
    assert not compiled.usable(loop, (w, g, m, v), w.size)
    calls = []
    monkeypatch.setattr(adam, "adam_reference", lambda *a: calls.append(a[-1].shape))
    shaped = [a.reshape(-1, 16) for a in (w, g, m, v)]
    adam.adam_update(*shaped, 0.1, 0.9, 0.999, 1e-7, Scratch())
    assert calls == [(compiled.MIN_SIZE // 16, 16)]  # its work array shaped like the parameter


def test_without_numba_the_reference_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.setattr(compiled, "_compiled", {})
    w, g, m, v = states(np.float32, n=compiled.MIN_SIZE)
    assert compiled.compiled(adam._adam_loop) is None
    assert not compiled.usable(adam._adam_loop, (w, g, m, v), w.size)
    expected = [a.copy() for a in (w, g, m, v)]
    adam.adam_reference(*expected, 0.1, 0.9, 0.999, 1e-7, np.empty_like(w))
    adam.adam_update(w, g, m, v, 0.1, 0.9, 0.999, 1e-7, Scratch())
    for a, b in zip((w, g, m, v), expected, strict=True):
        np.testing.assert_array_equal(a, b)
