"""The compiled model: flat buffers, the fused loss, the one training step, predict, evaluate."""

import numpy as np
import pytest

from bptrain.nn import SGD, Adam, Dense, Dropout, Flatten, Model, Sequential
from bptrain.nn.gradcheck import check_layer, check_model


def mlp(input_shape=(2, 3), rng=None, **dense) -> Sequential:
    network = Sequential(
        [
            Flatten(),
            Dense(8, activation="tanh", **dense),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ]
    )
    network.build(input_shape, rng if rng is not None else np.random.default_rng(0))
    return network


def test_parameters_are_views_of_two_flat_buffers():
    network = mlp()
    weights = network.weights()
    model = Model(network, "sparse_categorical_crossentropy", "adam")
    params = model.parameters()
    assert params.flat_value.size == network.count_params() == 83
    for p in params:
        assert np.shares_memory(p.value, params.flat_value)
        assert np.shares_memory(p.grad, params.flat_grad)
    for name, w in network.weights().items():  # packing keeps every value
        np.testing.assert_array_equal(w, weights[name])
    model.cast(np.float64)
    assert params is not model.parameters()
    assert model.parameters().flat_value.dtype == np.float64
    assert all(np.shares_memory(p.value, model.parameters().flat_value) for p in model.parameters())


def test_a_network_must_be_built_first():
    with pytest.raises(ValueError, match="build the network first"):
        Model(Sequential([Dense(2)]), "mse", "sgd")


@pytest.mark.parametrize("regularizer", [None, "l2"])
@pytest.mark.parametrize("training", [False, True])
def test_model_gradient_with_fused_softmax(regularizer, training):
    rng = np.random.default_rng(0)
    model = Model(mlp(rng=rng, kernel_regularizer=regularizer), "sparse_categorical_crossentropy")
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
    network = Sequential([Dense(4, activation="elu"), Dense(2, activation=activation)])
    network.build((3,), rng)
    model = Model(network, loss, SGD(0.1))
    assert model.fused == fused
    y = rng.integers(0, 2, size=(6, 2)).astype(float)
    assert check_model(model, rng.normal(size=(6, 3)), y).passed(1e-6)


def test_input_gradient_can_be_asked_for_after_training():
    rng = np.random.default_rng(0)
    network = mlp((6,), rng)
    Model(network, "sparse_categorical_crossentropy", "sgd").compute_gradients(
        rng.normal(size=(4, 6)), rng.integers(0, 3, 4)
    )
    report = check_layer(network, rng.normal(size=(3, 6)))
    assert report.passed(1e-6), report
    assert "input" in report.errors


def test_training_skips_the_input_gradient_unless_asked():
    rng = np.random.default_rng(0)
    x, dy = np.ones((2, 6), dtype=np.float32), rng.normal(size=(2, 3)).astype(np.float32)
    model = Model(mlp((6,)), "sparse_categorical_crossentropy", "sgd")
    model.forward(x, training=True)
    assert model.backward(dy) is None
    stage = Model(mlp((6,)), input_grad=True)  # no loss, no optimizer: a pipeline stage
    assert stage.step_loss is None and not stage.fused
    out = stage.forward(x, training=True)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)  # not fused: probabilities
    stage.zero_grad()
    assert stage.backward(dy).shape == (2, 6)
    assert stage.parameters().flat_grad.any()


def test_backward_adds_the_penalty_gradient_scaled():
    network = Sequential([Dense(3, kernel_regularizer={"type": "l2", "l2": 0.5})])
    network.build((2,), np.random.default_rng(0), dtype=np.float64)
    model = Model(network)
    kernel = network.layers[0].kernel
    model.forward(np.ones((1, 2)), training=True)
    model.zero_grad()
    model.backward(np.zeros((1, 3)), scale=0.25)
    np.testing.assert_allclose(kernel.grad, 0.25 * 2 * 0.5 * kernel.value)
    assert model.penalty() == pytest.approx(0.5 * float((kernel.value**2).sum()))


def test_fused_loss_equals_cross_entropy_of_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    network = Sequential([Dense(8, activation="tanh"), Dense(3, activation="softmax")])
    network.build((6,), rng)
    model = Model(network, "sparse_categorical_crossentropy", "sgd")
    fused = model.compute_gradients(x, y)
    probs = model.predict(x)
    np.testing.assert_allclose(fused, -np.log(probs[np.arange(8), y]).mean(), rtol=1e-5)
    loss, outputs = model.evaluate(x, y, batch_size=3)
    assert loss == pytest.approx(fused, rel=1e-6)
    np.testing.assert_allclose(outputs, probs, rtol=1e-6)
    assert "Fused: softmax + sparse_categorical_crossentropy" in model.summary()


def test_train_step_learns_xor():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    network = Sequential([Dense(16, activation="tanh"), Dense(2, activation="softmax")])
    network.build((2,), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam(0.05))
    losses = [model.train_step(x, y) for _ in range(300)]
    assert losses[-1] < 0.02 < losses[0]
    np.testing.assert_array_equal(model.predict(x).argmax(axis=1), y)
    assert model.optimizer.iterations == 300


def test_predict_of_nothing():
    model = Model(mlp((6,)), "sparse_categorical_crossentropy")
    assert model.predict(np.zeros((0, 6), np.float32)).shape == (0,)
