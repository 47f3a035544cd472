import math

import numpy as np
import pytest

from bptrain.nn import (
    Adam,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Model,
    Sequential,
    check_layer,
    check_model,
)
from bptrain.nn.kernels.layout import channel_major

rng = np.random.default_rng(0)

# (input shape per sample, Conv2D keyword arguments)
CASES = [
    ((3, 7, 8), dict(filters=4, kernel_size=3)),
    ((2, 9, 7), dict(filters=3, kernel_size=(3, 2), strides=2, padding="same")),
    ((2, 8, 8), dict(filters=2, kernel_size=3, strides=(2, 1), padding=1)),
    ((3, 9, 9), dict(filters=2, kernel_size=3, dilation=2, padding="same")),
    ((1, 11, 10), dict(filters=5, kernel_size=5, strides=3, padding="same")),
    ((2, 6, 6), dict(filters=3, kernel_size=2, strides=2)),  # windows tile the input
    ((4, 5, 5), dict(filters=2, kernel_size=1)),
]


def keras_same(size, kernel, stride, dilation):
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def reference_conv(layer, x):
    """Conv2D from its definition: for every output position, a sum over the window."""
    kernel = layer.kernel.value
    f, c, kh, kw = kernel.shape
    (sh, sw), (dh, dw) = layer.strides, layer.dilation
    h, w = x.shape[2:]
    if layer.padding == "valid":
        pads = ((0, 0), (0, 0))
    elif layer.padding == "same":
        pads = (keras_same(h, kh, sh, dh), keras_same(w, kw, sw, dw))
    else:
        pads = tuple((p, p) for p in layer.padding)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    ho = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    wo = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((x.shape[0], f, ho, wo))
    for a in range(ho):
        for b in range(wo):
            rows = slice(a * sh, a * sh + (kh - 1) * dh + 1, dh)
            cols = slice(b * sw, b * sw + (kw - 1) * dw + 1, dw)
            patch = xp[:, :, rows, cols]
            y[:, :, a, b] = np.einsum("ncij,fcij->nf", patch, kernel)
    if layer.use_bias:
        y += layer.bias.value[None, :, None, None]
    return y


def built(shape, **kwargs):
    layer = Conv2D(**kwargs, bias_initializer="glorot_uniform")  # non-zero biases to check
    layer.dtype = np.float64
    layer.output_shape = layer.build(shape, np.random.default_rng(1))
    layer.built = True
    return layer


@pytest.mark.parametrize("shape, kwargs", CASES)
def test_forward_matches_definition(shape, kwargs):
    layer = built(shape, **kwargs)
    x = rng.normal(size=(3, *shape))
    y = layer.forward(x)
    assert y.shape == (3, *layer.output_shape)
    np.testing.assert_allclose(y, reference_conv(layer, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kwargs", CASES)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"use_bias": False, "kernel_regularizer": "l2"},
        {"activation": "tanh", "kernel_regularizer": {"type": "l1_l2", "l1": 0.01, "l2": 0.01}},
        {"activation": "relu"},
    ],
)
def test_gradient(shape, kwargs, extra):
    layer = Conv2D(**kwargs, **extra)
    report = check_layer(layer, rng.normal(size=(2, *shape)))
    assert report.passed(1e-6), report
    assert set(report.errors) == {"input", "kernel", *(["bias"] if layer.use_bias else [])}


def test_output_shapes_and_kernel_layout():
    layer = Conv2D(8, (3, 5), strides=2, padding="same")
    assert layer.build((3, 28, 27), rng) == (8, 14, 14)
    assert layer.kernel.value.shape == (8, 3, 3, 5)  # (filters, channels, kh, kw)
    assert Conv2D(4, 3).build((1, 28, 28), rng) == (4, 26, 26)
    assert Conv2D(4, 3, padding=2, dilation=2).build((1, 10, 10), rng) == (4, 10, 10)


def test_glorot_fans_count_the_receptive_field():
    layer = Conv2D(64, 3)
    layer.build((32, 13, 13), rng)
    fan_in, fan_out = 32 * 9, 64 * 9
    limit = math.sqrt(6 / (fan_in + fan_out))
    k = np.abs(layer.kernel.value)
    assert k.max() <= limit and k.max() > 0.99 * limit


def test_float32_in_float32_out():
    layer = Conv2D(3, 3, activation="relu", padding="same")
    layer.build((2, 6, 6), rng)
    x = rng.normal(size=(4, 2, 6, 6)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.kernel.grad.dtype == np.float32


def test_outputs_are_not_overwritten_by_the_next_call():
    layer = Conv2D(3, 3)
    layer.build((2, 6, 6), rng)
    x1, x2 = rng.normal(size=(2, 4, 2, 6, 6)).astype(np.float32)
    y1 = layer.forward(x1)
    kept = y1.copy()
    layer.forward(x2)
    np.testing.assert_array_equal(y1, kept)
    y3 = layer.forward(x1[:3])  # a smaller batch (the last of an epoch) works too
    np.testing.assert_allclose(y3, kept[:3], rtol=1e-6)


def test_gradients_accumulate():
    layer = Conv2D(2, 3, padding="same")
    layer.build((1, 5, 5), rng)
    x = rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    dy = np.ones((2, 2, 5, 5), dtype=np.float32)
    layer.forward(x)
    layer.backward(dy)
    first = layer.kernel.grad.copy(), layer.bias.grad.copy()
    layer.forward(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.kernel.grad, 2 * first[0], rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * first[1], rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * 2 * 25 * np.ones(2))


def small_cnn():
    return Sequential(
        [
            Conv2D(3, 3, padding="same", activation="relu"),
            MaxPool2D(2),
            Conv2D(4, 3, strides=2, use_bias=False, kernel_regularizer="l2"),
            BatchNorm(),
            GlobalAvgPool2D(),
            Dense(5, activation="softmax"),
        ]
    )


def test_whole_cnn_gradient():
    network = small_cnn()
    network.build((2, 9, 9), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", "adam")
    x = rng.normal(size=(4, 2, 9, 9))
    y = np.array([0, 3, 4, 1])
    report = check_model(model, x, y, training=True)
    assert report.passed(1e-6), report
    assert len(report.errors) == 7  # 2 + 1 conv parameters, gamma, beta, dense kernel and bias


def test_conv_outputs_are_stored_channel_major():
    layer = Conv2D(4, 3)
    layer.build((2, 6, 6), rng)
    y = layer.forward(rng.normal(size=(3, 2, 6, 6)).astype(np.float32))
    assert y.shape == (3, 4, 4, 4) and channel_major(y)
    layer.backward(np.ones_like(y))  # a channel-major dy is used in place...
    dx = layer.backward(np.ones((3, 4, 4, 4), dtype=np.float32))  # ...an NCHW one copied
    assert dx.shape == (3, 2, 6, 6) and channel_major(dx)


def test_first_trainable_conv_computes_no_input_gradient():
    network = Sequential([Conv2D(4, 3), Flatten(), Dense(2)])
    network.build((1, 6, 6))
    model = Model(network, "mse", "sgd")
    x, dy = np.ones((2, 1, 6, 6), dtype=np.float32), np.ones((2, 2), dtype=np.float32)
    model.forward(x, training=True)
    assert model.backward(dy) is None
    conv = network.layers[0]
    assert conv.needs_input_grad is False and conv.kernel.grad.any()
    model.forward(x, training=True)
    assert conv.backward(np.ones((2, 4, 4, 4), dtype=np.float32)) is None


def test_training_updates_packed_parameters_in_place():
    network = Sequential(
        [Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3, activation="softmax")]
    )
    network.build((1, 8, 8), np.random.default_rng(0))
    model = Model(network, "sparse_categorical_crossentropy", Adam(0.01))
    conv = network.layers[0]
    flat = model.parameters().flat_value
    x = rng.random((16, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    before = conv.kernel.value.copy()
    losses = [model.train_step(x, y) for _ in range(30)]
    assert np.shares_memory(conv.kernel.value, flat)  # still a view of the packed buffer
    assert not np.array_equal(conv.kernel.value, before)
    assert losses[-1] < 0.7 * losses[0]


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="filters must be positive"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        Conv2D(2, (3, 0))
    with pytest.raises(ValueError, match="padding"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="expects \\(channels, height, width\\)"):
        Conv2D(2, 3).build((10,), rng)
    model = Sequential([Conv2D(2, 5)])
    with pytest.raises(ValueError, match="conv2_d.*does not fit the 4x4 input"):
        model.build((1, 4, 4))


def test_config_and_repr():
    layer = Conv2D(8, 3, strides=2, padding="same", activation="relu")
    assert layer.config() == {
        "filters": 8,
        "kernel_size": (3, 3),
        "strides": (2, 2),
        "padding": "same",
        "activation": "relu",
    }
    assert repr(layer).startswith("Conv2D(filters=8")


@pytest.mark.parametrize("shape, kwargs", CASES)
def test_matches_pytorch(shape, kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional oracle for this test")
    functional = torch.nn.functional
    layer = built(shape, **kwargs, activation=None)
    x = rng.normal(size=(3, *shape))
    y = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx = layer.backward(dy)

    g = layer.geometry
    top, bottom, left, right = g.pad
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.kernel.value.copy(), requires_grad=True)
    bt = torch.tensor(layer.bias.value.copy(), requires_grad=True)
    yt = functional.conv2d(
        functional.pad(xt, (left, right, top, bottom)),
        wt,
        bt,
        stride=layer.strides,
        dilation=layer.dilation,
    )
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.kernel.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, bt.grad.numpy(), rtol=1e-10, atol=1e-12)
