"""The LSTM layer's fast kernels against the textbook cell (``kernels.lstm.lstm_reference``),
forward and backward, in float64."""

import numpy as np
import pytest

from bptrain.nn import LSTM
from bptrain.nn.kernels.lstm import lstm_reference, lstm_reference_backward

rng = np.random.default_rng(0)

OPTIONS = [
    {},  # Keras' defaults: sigmoid gates as tanh on halved weights, factors in place
    {"return_sequences": True},
    {"go_backwards": True, "return_sequences": True},
    {"truncate_bptt": 2, "return_sequences": True},
    {"activation": "elu", "recurrent_activation": "sigmoid"},  # factors from the cache z
    {"activation": "tanh", "recurrent_activation": "relu", "return_sequences": True},
]


def built(options, d=3):
    layer = LSTM(5, **options)
    layer.dtype = np.float64
    layer.build((4, d), rng)
    layer.cast(np.float64)
    for p in layer.parameters():
        p.value[...] = rng.normal(scale=0.5, size=p.shape)
    return layer


@pytest.mark.parametrize("options", OPTIONS)
def test_lstm_kernels_match_the_textbook_cell(options):
    layer = built(options)
    x = rng.normal(size=(2, 4, 3))
    weights = (
        layer.kernel.value,
        layer.recurrent_kernel.value,
        layer.bias.value,
        layer.recurrent_activation,
        layer.cell_activation,
    )
    xs = x[:, ::-1] if layer.go_backwards else x
    hs, cache = lstm_reference(xs, weights)
    y = layer.forward(x)
    np.testing.assert_allclose(y, hs if layer.return_sequences else hs[:, -1], rtol=1e-12)
    dy = rng.normal(size=y.shape)
    dhs = dy if layer.return_sequences else np.zeros_like(hs)
    if not layer.return_sequences:
        dhs[:, -1] = dy
    dx_ref, dkernel, drecurrent, dbias = lstm_reference_backward(dhs, cache, layer.truncate_bptt)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dx_ref[:, ::-1] if layer.go_backwards else dx_ref, rtol=1e-10)
    np.testing.assert_allclose(layer.kernel.grad, dkernel, rtol=1e-10)
    np.testing.assert_allclose(layer.recurrent_kernel.grad, drecurrent, rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad, dbias, rtol=1e-10)


def test_the_textbook_cell_passes_a_gradient_check():
    layer = built({})
    weights = [
        layer.kernel.value,
        layer.recurrent_kernel.value,
        layer.bias.value,
        layer.recurrent_activation,
        layer.cell_activation,
    ]
    x = rng.normal(size=(2, 4, 3))
    r = rng.normal(size=(2, 4, 5))
    _, cache = lstm_reference(x, weights)
    analytic = lstm_reference_backward(r, cache)
    eps = 1e-6
    for which, array in enumerate((x, *weights[:3])):
        flat = array.reshape(-1)
        for k in range(0, flat.size, 7):
            old = flat[k]
            flat[k] = old + eps
            plus = (lstm_reference(x, weights)[0] * r).sum()
            flat[k] = old - eps
            minus = (lstm_reference(x, weights)[0] * r).sum()
            flat[k] = old
            numeric = (plus - minus) / (2 * eps)
            assert analytic[which].reshape(-1)[k] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
