"""NumPy's own tanh loop called from compiled code (``kernels.ufunc_loops``): NumPy's bits."""

import numpy as np
import pytest

from bptrain.nn.kernels import ufunc_loops
from bptrain.nn.kernels.compiled import compiled

pytest.importorskip("numba", reason="the loop is called from compiled code (the fast extra)")


def values(dtype):
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-310, 9.0, -9.0, 20.0, 0.5]
    spread = np.random.default_rng(0).normal(scale=4, size=5003)  # (not a multiple of 16)
    return np.concatenate([special, spread]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_call_gives_numpy_tanh_bits(dtype):
    loop = ufunc_loops.strided_loop(np.tanh, dtype)
    assert loop is not None  # NumPy >= 1.24 hands it out
    assert ufunc_loops.strided_loop(np.tanh, dtype) is loop  # made once
    x = values(dtype)
    y = np.full_like(x, 7)
    work = np.zeros(5, np.int64)
    call = compiled(ufunc_loops._unary_loop)
    assert call(loop.function, loop.context, loop.auxdata, x, y, work) == 0
    np.testing.assert_array_equal(y, np.tanh(x))  # NaN where NumPy has NaN, same signs of 0
    assert np.array_equal(np.signbit(y), np.signbit(np.tanh(x)))
    empty = np.empty(0, dtype)
    assert call(loop.function, loop.context, loop.auxdata, empty, empty, work) == 0


def test_none_where_numpy_does_not_hand_the_loop_out():
    class OldUfunc:  # a NumPy before 1.24: no ``_resolve_dtypes_and_context``
        pass

    assert ufunc_loops.strided_loop(OldUfunc(), np.float32) is None
    assert ufunc_loops.strided_loop(np.add, np.float32) is None  # two inputs: not unary
