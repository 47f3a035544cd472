import numpy as np
import pytest

from bptrain.nn import SGD, Adam, Dense, Dropout, Flatten, Sequential
from bptrain.nn.gradcheck import check_layer, check_model


def mlp(**dense):
    return Sequential(
        [
            Flatten(),
            Dense(8, activation="tanh", **dense),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ]
    )


def test_build_names_shapes_and_packing():
    model = mlp()
    assert model.build((2, 3), np.random.default_rng(0)) == (3,)
    assert [layer.name for layer in model.layers] == ["flatten", "dense", "dropout", "dense_1"]
    assert model.layers[1].output_shape == (8,)
    params = model.parameters()
    assert [p.name for p in params] == ["kernel", "bias", "kernel", "bias"]
    assert params.flat_value.size == 6 * 8 + 8 + 8 * 3 + 3 == model.count_params()
    for p in params:  # every parameter is a view of the flat buffers
        assert np.shares_memory(p.value, params.flat_value)
        assert np.shares_memory(p.grad, params.flat_grad)
    assert list(model.weights()) == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]


def test_same_seed_same_weights():
    a, b = mlp(), mlp()
    a.build((6,), np.random.default_rng(5))
    b.build((6,), np.random.default_rng(5))
    for (name, wa), wb in zip(a.weights().items(), b.weights().values(), strict=True):
        np.testing.assert_array_equal(wa, wb, err_msg=name)


@pytest.mark.parametrize("regularizer", [None, "l2"])
@pytest.mark.parametrize("training", [False, True])
def test_model_gradient_with_fused_softmax(regularizer, training):
    rng = np.random.default_rng(0)
    model = mlp(kernel_regularizer=regularizer)
    model.build((2, 3), rng)
    model.compile("sparse_categorical_crossentropy", "adam")
    assert model.fused
    report = check_model(
        model, rng.normal(size=(5, 2, 3)), rng.integers(0, 3, 5), training=training
    )
    assert report.passed(1e-6), report


@pytest.mark.parametrize(
    ("loss", "activation", "fused"),
    [("binary_crossentropy", "sigmoid", True), ("mse", None, False), ("huber", "tanh", False)],
)
def test_model_gradient_other_losses(loss, activation, fused):
    rng = np.random.default_rng(1)
    model = Sequential([Dense(4, activation="elu"), Dense(2, activation=activation)])
    model.build((3,), rng)
    model.compile(loss, SGD(0.1))
    assert model.fused == fused
    y = rng.integers(0, 2, size=(6, 2)).astype(float)
    assert check_model(model, rng.normal(size=(6, 3)), y).passed(1e-6)


def test_sequential_as_a_layer_passes_input_gradient():
    model = Sequential([Dense(4, activation="relu"), Dense(2)])
    report = check_layer(model, np.random.default_rng(0).normal(size=(3, 5)))
    assert report.passed(1e-6), report
    assert "input" in report.errors and "dense/kernel" in report.errors


def test_input_gradient_can_be_asked_for_after_training():
    rng = np.random.default_rng(0)
    model = mlp()
    model.build((6,), rng)
    model.compile("sparse_categorical_crossentropy", "sgd")
    model.compute_gradients(rng.normal(size=(4, 6)), rng.integers(0, 3, 4))
    report = check_layer(model, rng.normal(size=(3, 6)))
    assert report.passed(1e-6), report
    assert "input" in report.errors


def test_training_skips_input_gradient():
    model = mlp()
    model.build((6,), np.random.default_rng(0))
    model.compile("sparse_categorical_crossentropy", "sgd")
    model.forward(np.ones((2, 6), dtype=np.float32), training=True)
    assert model.backward(np.ones((2, 3), dtype=np.float32)) is None


def test_fused_loss_equals_cross_entropy_of_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = Sequential([Dense(8, activation="tanh"), Dense(3, activation="softmax")])
    model.build((6,), rng)
    model.compile("sparse_categorical_crossentropy", "sgd")
    fused = model.compute_gradients(x, y)
    probs = model.forward(x)
    np.testing.assert_allclose(fused, -np.log(probs[np.arange(8), y]).mean(), rtol=1e-5)


def test_train_step_learns_xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    model = Sequential([Dense(16, activation="tanh"), Dense(2, activation="softmax")])
    model.build((2,), np.random.default_rng(0))
    model.compile("sparse_categorical_crossentropy", Adam(0.05))
    losses = [model.train_step(x, y) for _ in range(300)]
    assert losses[-1] < 0.02 < losses[0]
    np.testing.assert_array_equal(model.predict(x).argmax(axis=1), y)


def test_cast_and_weights_round_trip():
    model = mlp()
    model.build((6,), np.random.default_rng(0))
    weights = model.weights()
    model.cast(np.float64)
    assert all(p.value.dtype == np.float64 for p in model.parameters())
    assert model.parameters().flat_value.dtype == np.float64
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
    model = mlp()
    model.build((2, 3), np.random.default_rng(0))
    text = model.summary()
    assert "dense (Dense)" in text and "(None, 8)" in text and "56" in text
    assert "Trainable params: 83" in text


def test_empty_model_and_shape_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([]).build((3,))
    from bptrain.nn import Reshape

    with pytest.raises(ValueError, match="layer 'reshape'"):
        Sequential([Reshape([4, 4])]).build((3,))
