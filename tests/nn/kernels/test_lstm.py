"""The LSTM layer's fast kernels against the textbook cell (``kernels.lstm.lstm_reference``),
forward and backward, in float64."""

import numpy as np
import pytest

from bptrain.nn import LSTM
from bptrain.nn.kernels.lstm import lstm_reference, lstm_reference_backward
from tests.nn.kernels.recurrent_reference import assert_matches_reference, built
from tests.nn.kernels.recurrent_reference import weights as layer_weights

rng = np.random.default_rng(0)

OPTIONS = [
    {},  # Keras' defaults: sigmoid gates as tanh on halved weights, factors in place
    {"return_sequences": True},
    {"go_backwards": True, "return_sequences": True},
    {"truncate_bptt": 2, "return_sequences": True},
    {"activation": "elu", "recurrent_activation": "sigmoid"},  # factors from the cache z
    {"activation": "tanh", "recurrent_activation": "relu", "return_sequences": True},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_lstm_kernels_match_the_textbook_cell(options):
    layer = built(LSTM, options)
    assert_matches_reference(
        layer, lambda x: lstm_reference(x, layer_weights(layer)), lstm_reference_backward
    )


def test_the_textbook_cell_passes_a_gradient_check():
    layer = built(LSTM, {})
    weights = list(layer_weights(layer))
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
