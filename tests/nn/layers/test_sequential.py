"""Sequential as a plain container: naming, shapes, weights by name, and as a layer."""

import numpy as np
import pytest

from bptrain.nn import Dense, Dropout, Flatten, Reshape, Sequential
from bptrain.nn.gradcheck import check_layer


def mlp(**dense):
    return Sequential(
        [
            Flatten(),
            Dense(8, activation="tanh", **dense),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ]
    )


def test_build_names_layers_and_infers_shapes():
    network = mlp()
    assert network.build((2, 3), np.random.default_rng(0)) == (3,)
    assert [layer.name for layer in network.layers] == ["flatten", "dense", "dropout", "dense_1"]
    assert network.layers[1].output_shape == (8,)
    assert [p.name for p in network.parameters()] == ["kernel", "bias", "kernel", "bias"]
    assert network.count_params() == 6 * 8 + 8 + 8 * 3 + 3
    assert list(network.weights()) == [
        "dense/kernel",
        "dense/bias",
        "dense_1/kernel",
        "dense_1/bias",
    ]
    assert network.output_activation == "softmax"


def test_same_seed_same_weights():
    a, b = mlp(), mlp()
    a.build((6,), np.random.default_rng(5))
    b.build((6,), np.random.default_rng(5))
    for (name, wa), wb in zip(a.weights().items(), b.weights().values(), strict=True):
        np.testing.assert_array_equal(wa, wb, err_msg=name)


def test_sequential_as_a_layer_passes_input_gradient():
    network = Sequential([Dense(4, activation="relu"), Dense(2)])
    report = check_layer(network, np.random.default_rng(0).normal(size=(3, 5)))
    assert report.passed(1e-6), report
    assert "input" in report.errors and "dense/kernel" in report.errors


def test_logits_leave_out_the_last_activation():
    rng = np.random.default_rng(0)
    network = Sequential([Dense(8, activation="tanh"), Dense(3, activation="softmax")])
    network.build((6,), rng)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    logits = network.forward(x, logits=True)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(network.forward(x), e / e.sum(axis=1, keepdims=True), rtol=1e-6)


def test_cast_and_weights_round_trip():
    network = mlp()
    network.build((6,), np.random.default_rng(0))
    weights = network.weights()
    network.cast(np.float64)
    assert all(p.value.dtype == np.float64 for p in network.parameters())
    other = mlp()
    other.build((6,), np.random.default_rng(9))
    other.load_weights(weights)
    for name, w in other.weights().items():
        np.testing.assert_array_equal(w, weights[name])
    with pytest.raises(ValueError, match="missing"):
        other.load_weights({"dense/kernel": weights["dense/kernel"]})
    bad = dict(weights, **{"dense/bias": np.zeros(5)})
    with pytest.raises(ValueError, match="shape"):
        other.load_weights(bad)


def test_summary():
    network = mlp()
    network.build((2, 3), np.random.default_rng(0))
    text = network.summary()
    assert "dense (Dense)" in text and "(None, 8)" in text and "56" in text
    assert "Trainable params: 83" in text


def test_empty_model_and_shape_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([]).build((3,))
    with pytest.raises(ValueError, match="layer 'reshape'"):
        Sequential([Reshape([4, 4])]).build((3,))
