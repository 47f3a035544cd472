"""Fused layers and the fusion pass: the same values as the plain layers, their own gradient
checks, and no layer that knows its neighbours."""

import numpy as np
import pytest

from bptrain.nn import (
    Activation,
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    Model,
    Sequential,
    check_layer,
    check_model,
)
from bptrain.nn.fusion import fuse
from bptrain.nn.layers.fused import ConvMaxPool2D, ReLUAfterMaxPool

rng = np.random.default_rng(0)


def feeding_cnn(activation, fuse=True, **conv):
    """A conv on 2 channels that writes its pool's windows (18 < 24 filters) above one that
    needs its input gradient, so both of its passes run."""
    return Sequential(
        [
            Conv2D(2, 2, activation="tanh"),
            Conv2D(24, 3, activation=activation, **conv),
            MaxPool2D(2),
            Flatten(),
            Dense(4, activation="softmax"),
        ],
        fuse=fuse,
    )


FEEDING = [
    ("relu", {}),
    ("tanh", {"padding": "same"}),
    ("relu", {"strides": 2, "padding": 1}),
    (None, {"dilation": 2}),
]


@pytest.mark.parametrize("activation, conv", FEEDING)
def test_conv_max_pool_computes_what_the_plain_layers_compute(activation, conv):
    networks = [feeding_cnn(activation, f, **conv) for f in (True, False)]
    for network in networks:
        network.build((3, 11, 11), np.random.default_rng(0), dtype=np.float64)
    fused, plain = (Model(n, "sparse_categorical_crossentropy", "sgd") for n in networks)
    assert isinstance(networks[0].runs[1], ConvMaxPool2D) and networks[1].runs == networks[1].layers
    x, y = rng.normal(size=(5, 3, 11, 11)), np.array([0, 3, 1, 2, 3])
    np.testing.assert_allclose(fused.predict(x), plain.predict(x), rtol=1e-12)
    assert fused.compute_gradients(x, y) == pytest.approx(plain.compute_gradients(x, y), rel=1e-12)
    for (name, p), q in zip(networks[0].named_parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("activation, conv", FEEDING)
def test_conv_max_pool_passes_the_gradient_check(activation, conv):
    network = feeding_cnn(activation, **conv)
    network.build((3, 11, 11), np.random.default_rng(1))
    model = Model(network, "sparse_categorical_crossentropy", "adam")
    report = check_model(model, rng.normal(size=(3, 3, 11, 11)), np.array([2, 0, 1]))
    assert report.passed(1e-6), report
    fused = network.runs[1]
    report = check_layer(fused, rng.normal(size=(2, 2, 10, 10)))
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", "conv2_d_1/kernel", "conv2_d_1/bias"}


def test_which_pairs_are_fused():
    model = Sequential(
        [
            Conv2D(32, 3, activation="relu"),  # 9 column rows < 32 filters: writes the windows
            MaxPool2D(2),
            Conv2D(64, 3, activation="relu"),  # 576 > 64: the ReLU moves past the pool
            MaxPool2D(2),
            Conv2D(64, 1),  # no ReLU, and the windows overlap: nothing to fuse
            MaxPool2D(2, strides=1),
            Conv2D(128, 1, activation="relu"),
            AvgPool2D(2),  # only max pools
        ]
    )
    model.build((1, 28, 28))
    kinds = [type(layer).__name__ for layer in model.runs]
    assert kinds == [
        "ConvMaxPool2D",
        "ReLUAfterMaxPool",
        "Conv2D",
        "MaxPool2D",
        "Conv2D",
        "AvgPool2D",
    ]
    assert len(model.layers) == 8 and [p.name for p in model.runs[0].parameters()] == [
        "kernel",
        "bias",
    ]
    out = model.forward(np.ones((2, 1, 28, 28), dtype=np.float32))
    assert out.shape == (2, 128, 2, 2) == (2, *model.output_shape)
    summary = model.summary()
    first = "Fused: conv2_d+max_pool2_d: direct loops (large batches) or the convolution writes"
    assert f"{first} the pool's windows; ReLU after the pool" in summary
    second = "Fused: conv2_d_1+max_pool2_d_1: ReLU after the pool, on 1/4 of the values"
    assert f"{second}; Winograd's output tiles pool themselves (large batches)" in summary
    assert "Fused" not in Sequential(model.layers, fuse=False).summary()


def test_no_layer_depends_on_its_neighbours():
    conv, pool = Conv2D(32, 3, activation="relu"), MaxPool2D(2)
    model = Sequential([conv, pool])
    model.build((1, 8, 8))
    x = rng.normal(size=(2, 1, 8, 8)).astype(np.float32)
    y = conv.forward(x)  # the plain layer, in a fused model, still returns its own NCHW output
    assert y.shape == (2, 32, 6, 6) and (y >= 0).all()
    np.testing.assert_array_equal(model.forward(x), pool.forward(y))
    assert fuse([conv]) == [conv] and fuse([pool, conv]) == [pool, conv]


def small_cnn(first_activation="relu", fuse=True):
    return Sequential(
        [
            Conv2D(3, 2, activation=first_activation),
            MaxPool2D(2),
            Conv2D(2, 2),
            Activation("relu"),
            MaxPool2D(2, strides=1),
            Flatten(),
            Dense(2, activation="relu"),
        ],
        fuse=fuse,
    )


def test_relu_before_max_pool_is_applied_after_it():
    model = small_cnn()
    model.build((2, 7, 7))
    assert [type(r).__name__ for r in model.runs[:3]] == [
        "ReLUAfterMaxPool",
        "Conv2D",
        "ReLUAfterMaxPool",
    ]
    assert model.layers[0].config()["activation"] == "relu"  # where it runs is not configuration
    other = small_cnn(first_activation="tanh")
    other.build((2, 7, 7))
    assert other.runs[:2] == other.layers[:2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_after_max_pool_is_bit_for_bit_the_plain_layers(dtype):
    # Small integers make exact ties everywhere: equal maxima, zeros, windows of only zeros.
    x = rng.integers(-1, 2, size=(6, 2, 7, 7)).astype(dtype)
    dy = rng.integers(-2, 3, size=(6, 2)).astype(dtype)
    results = []
    for fused in (True, False):
        model = small_cnn(fuse=fused)
        model.build((2, 7, 7), np.random.default_rng(1), dtype=dtype)
        for p in model.parameters():
            p.value[...] = np.random.default_rng(p.size).integers(-1, 2, size=p.value.shape)
        model.needs_input_grad = True
        y = model.forward(x, training=True)
        dx = model.backward(dy)
        results.append((y, dx, [p.grad.copy() for p in model.parameters()]))
    (y, dx, grad), (y0, dx0, grad0) = results
    assert (y0 > 0).any() and (dx0 != 0).any() and (dx0 == 0).any()
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(dx, dx0)
    for g, g0 in zip(grad, grad0, strict=True):
        np.testing.assert_array_equal(g, g0)


def test_relu_after_max_pool_gradients():
    network = small_cnn()
    network.build((2, 7, 7), rng)
    report = check_model(
        Model(network, "mse", "sgd"), rng.normal(size=(3, 2, 7, 7)), rng.normal(size=(3, 2))
    )
    assert report.passed(1e-6), report
    report = check_layer(network, rng.normal(size=(3, 2, 7, 7)))
    assert report.passed(1e-6), report
    fused = network.runs[0]
    assert isinstance(fused, ReLUAfterMaxPool)
    report = check_layer(fused, rng.normal(size=(2, 2, 7, 7)))
    assert report.passed(1e-6) and len(report.errors) == 3, report


def test_a_softmax_conv_is_not_computed_in_window_order():
    """Softmax is over the last axis: on the pool's windows it would mix other positions."""
    models = [
        Sequential([Conv2D(16, 3, activation="softmax"), MaxPool2D(2)], fuse=f) for f in (1, 0)
    ]
    for model in models:
        model.build((1, 8, 8), np.random.default_rng(0), dtype=np.float64)
    assert models[0].runs == models[0].layers
    x = rng.normal(size=(2, 1, 8, 8))
    np.testing.assert_array_equal(models[0].forward(x), models[1].forward(x))
