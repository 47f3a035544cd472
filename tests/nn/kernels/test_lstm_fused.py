"""The LSTM's compiled step loops (``kernels.lstm_fused``) against the NumPy step calls they
replace: the same layer, the same inputs, the same bits, forward and backward; and against the
textbook cell."""

import numpy as np
import pytest

from bptrain.nn import LSTM
from bptrain.nn.kernels import blas_threads, compiled, lstm_fused
from bptrain.nn.kernels.lstm import lstm_reference, lstm_reference_backward
from bptrain.nn.layers import lstm as lstm_layer
from tests.nn.kernels.recurrent_reference import assert_matches_reference, built, weights

pytest.importorskip("numba")

OPTIONS = [
    {},
    {"return_sequences": True},
    {"truncate_bptt": 2, "return_sequences": True},
    {"go_backwards": True},
]


def forward_backward(layer, x, dy):
    """(y, dx, every gradient) of one forward and backward pass, gradients zeroed first."""
    for p in layer.parameters():
        p.grad[...] = 0
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    return [y.copy(), dx.copy(), *(p.grad.copy() for p in layer.parameters())]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("one_call", [True, False], ids=["time loop in one call", "step calls"])
def test_compiled_steps_give_the_numpy_steps_bits(options, dtype, one_call, monkeypatch):
    layer = built(LSTM, options)
    layer.cast(dtype)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 3)).astype(dtype)
    dy = rng.normal(size=(3, 4, 5) if layer.return_sequences else (3, 5)).astype(dtype)
    plain = forward_backward(layer, x, dy)  # this small layer is below compiled.MIN_SIZE
    calls = []
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    if one_call:
        assert lstm_fused.time_loops(dtype) is not None  # (NumPy's OpenBLAS and tanh loop)
    else:
        monkeypatch.setattr(lstm_fused, "time_loops", lambda dtype: None)
    for name in ("forward_steps", "forward_time_loop", "back_from_cache"):
        step = getattr(lstm_fused, name)
        monkeypatch.setattr(lstm_fused, name, lambda *a, s=step, n=name: calls.append(n) or s(*a))
    fused = forward_backward(layer, x, dy)
    forward = "forward_time_loop" if one_call else "forward_steps"
    assert calls.count(forward) == 1 and calls.count("back_from_cache") == 1
    assert len(calls) == 2
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


def test_compiled_steps_match_the_textbook_cell(monkeypatch):
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    layer = built(LSTM, {"return_sequences": True})
    assert_matches_reference(
        layer, lambda x: lstm_reference(x, weights(layer)), lstm_reference_backward
    )


def test_other_activations_keep_the_numpy_steps(monkeypatch):
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    layer = built(LSTM, {"recurrent_activation": "relu"})
    assert not lstm_fused.fused_cell(layer._gates, layer.cell_activation, ())
    layer = built(LSTM, {})
    assert lstm_fused.fused_cell(layer._gates, layer.cell_activation, ())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", OPTIONS)
def test_batch_split_over_threads_gives_the_whole_batch_values(options, dtype, monkeypatch):
    monkeypatch.setattr(compiled, "MIN_SIZE", 0)
    layer = built(LSTM, options)
    layer.cast(dtype)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4, 3)).astype(dtype)
    dy = rng.normal(size=(6, 4, 5) if layer.return_sequences else (6, 5)).astype(dtype)
    whole = forward_backward(layer, x, dy)
    monkeypatch.setattr(blas_threads, "MIN_COLUMNS", 2)
    monkeypatch.setattr(blas_threads, "blas_threads", lambda: 3)
    parts = []
    real = blas_threads.on_cores
    monkeypatch.setattr(lstm_layer, "on_cores", lambda work, k: parts.append(k) or real(work, k))
    split = forward_backward(layer, x, dy)
    assert parts == [3, 3]  # the forward and the backward time loops, 2 sequences a part
    for a, b in zip(split, whole, strict=True):
        assert a.dtype == dtype
        # The parts' GEMMs are thinner, and OpenBLAS may round them differently: here float64
        # does (float32 gives the same bits, as the benchmark LSTM does on the dev machine).
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12)
