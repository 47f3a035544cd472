"""Every layer type exported to ONNX gives, in ONNX Runtime, the values of its own forward
pass (inference mode) to float32 round-off; the onnx checker passes on each."""

import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install 'bptrain[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the proof needs onnxruntime")

from bptrain.errors import ConfigError  # noqa: E402
from bptrain.export import onnx_model  # noqa: E402
from bptrain.nn import (  # noqa: E402
    GRU,
    LSTM,
    Activation,
    AvgPool2D,
    BatchNorm,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Reshape,
    Sequential,
    SimpleRNN,
)

BIAS = {"type": "random_uniform", "minval": -0.5, "maxval": 0.5}
IMAGE, SEQ = (3, 9, 9), (6, 4)

MODELS = {
    "dense-activations": (
        (5,),
        lambda: [
            Dense(7, activation="relu", bias_initializer=BIAS),
            Dense(6, activation="leaky_relu"),
            Dense(6, activation="elu", use_bias=False),
            Dense(6, activation="gelu"),
            Activation("tanh"),
            Dropout(0.5),
            Dense(3, activation="softmax"),
        ],
    ),
    "conv-pools-batchnorm": (
        IMAGE,
        lambda: [
            Conv2D(4, 3, padding="same", activation="relu", bias_initializer=BIAS),
            BatchNorm(),
            MaxPool2D(2, padding="same"),
            Conv2D(5, 2, strides=2, padding=1, dilation=1, activation="sigmoid"),
            AvgPool2D(2, strides=1, padding="same"),
            GlobalAvgPool2D(),
            BatchNorm(),
            Dense(2, activation="sigmoid"),
        ],
    ),
    "flatten-reshape": (IMAGE, lambda: [Flatten(), Reshape([27, -1]), SimpleRNN(3)]),
    "embedding-lstm": (
        (7,),
        lambda: [
            Embedding(11, 4),
            LSTM(5, return_sequences=True, bias_initializer=BIAS),
            LSTM(3, go_backwards=True),
        ],
    ),  # fmt: skip
    "gru-both-resets": (
        SEQ,
        lambda: [
            GRU(5, return_sequences=True, bias_initializer=BIAS, go_backwards=True),
            GRU(3, reset_after=False, bias_initializer=BIAS),
        ],
    ),  # fmt: skip
    "bidirectional": (
        SEQ,
        lambda: [
            Bidirectional(LSTM(3, return_sequences=True, bias_initializer=BIAS)),
            Bidirectional({"type": "GRU", "units": 2, "return_sequences": True}, "sum"),
            Bidirectional(SimpleRNN(2, activation="relu"), "ave"),
            Sequential([Dense(3)]),
        ],
    ),
}


def inputs(name, shape, n=5):
    rng = np.random.default_rng(3)
    if name.startswith("embedding"):
        return rng.integers(0, 11, (n, *shape)).astype(np.float32)
    return rng.normal(size=(n, *shape)).astype(np.float32)


def exported_and_expected(name, info=None):
    shape, layers = MODELS[name]
    model = Sequential(layers())
    model.build(shape, np.random.default_rng(0))
    for layer in model.layers:  # running statistics away from 0 and 1
        if isinstance(layer, BatchNorm):
            layer.moving_mean[...] = np.linspace(-0.5, 0.5, layer.moving_mean.size)
            layer.moving_variance[...] = np.linspace(0.5, 2.0, layer.moving_variance.size)
    x = inputs(name, shape)
    proto = onnx_model(model, info or {"input_shape": list(shape)}, name)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    return got, model.forward(x, training=False), x, model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layers_in_onnx_runtime_match_forward(name):
    got, want, _, _ = exported_and_expected(name)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_scale_and_scale_target_are_folded_in():
    info = {
        "input_shape": [5],
        "task": "regression",
        "scale": {"shift": [1.0, 2, 3, 4, 5], "divisor": [2.0, 2, 4, 4, 8]},
        "scale_target": {"shift": [10.0, 20, 30], "divisor": [3.0, 3, 3]},
    }
    got, _, x, model = exported_and_expected("dense-activations", info)
    scaled = (x - np.float32([1, 2, 3, 4, 5])) / np.float32([2, 2, 4, 4, 8])
    want = model.forward(scaled.astype(np.float32)) * 3.0 + np.array([10.0, 20, 30])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_recurrent_activation_without_onnx_form_is_a_one_line_error():
    model = Sequential([LSTM(3, recurrent_activation="gelu")])
    model.build(SEQ, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="layer 'lstm': a recurrent activation 'gelu' has no"):
        onnx_model(model, {"input_shape": list(SEQ)})
