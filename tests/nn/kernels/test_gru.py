"""The GRU layer's fast kernels against the textbook cell (``kernels.gru.gru_reference``),
both of Keras' variants, forward and backward, in float64."""

import pytest

from bptrain.nn import GRU
from bptrain.nn.kernels.gru import gru_reference, gru_reference_backward
from tests.nn.kernels.recurrent_reference import assert_matches_reference, built, weights

OPTIONS = [
    {},  # Keras' default: reset_after, sigmoid gates as tanh on halved weights
    {"reset_after": False, "return_sequences": True},
    {"go_backwards": True, "return_sequences": True},
    {"truncate_bptt": 2, "return_sequences": True},
    {"truncate_bptt": 3, "reset_after": False},
    {"activation": "elu", "recurrent_activation": "sigmoid", "return_sequences": True},
    {"activation": "tanh", "recurrent_activation": "relu", "reset_after": False},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_gru_kernels_match_the_textbook_cell(options):
    layer = built(GRU, options)
    assert_matches_reference(
        layer,
        lambda x: gru_reference(x, weights(layer), layer.reset_after),
        gru_reference_backward,
    )
