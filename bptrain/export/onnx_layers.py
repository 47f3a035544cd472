"""Each layer type as ONNX nodes: ``CONVERTERS[type name](graph, layer, x) -> y``, with the
same values as the layer's ``forward(x, training=False)`` (Dropout is the identity, BatchNorm
uses its running statistics). Models are exported from their plain layers (``model.layers``,
not the fused ones). Recurrent layers become ONNX's RNN, LSTM and GRU operators; a layer that
runs backwards reads its input reversed, as ours does.
"""

from __future__ import annotations

import math

import numpy as np

from bptrain.errors import ConfigError
from bptrain.export.graph import Graph
from bptrain.nn import backend

INT64_MIN = np.iinfo(np.int64).min


def _w(p) -> np.ndarray:
    return backend.to_numpy(p.value).astype(np.float32)


def activation(g: Graph, act, x: str, where: str) -> str:
    """``act`` (an ``nn.activations`` instance or None) applied to ``x``."""
    name = "linear" if act is None else act.name
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if name in simple:
        return g.op(simple[name], x)
    if name == "softmax":
        return g.op("Softmax", x, axis=-1)
    if name == "leaky_relu":
        return g.op("LeakyRelu", x, alpha=float(act.negative_slope))
    if name == "elu":
        return g.op("Elu", x, alpha=float(act.alpha))
    if name == "gelu":  # the tanh approximation, as nn.activations.GELU computes it
        cube = g.op("Mul", x, g.op("Mul", x, x))
        inner = g.op("Add", x, g.op("Mul", cube, g.const(np.float32(0.044715))))
        t = g.op("Tanh", g.op("Mul", inner, g.const(np.float32(math.sqrt(2 / math.pi)))))
        half_x = g.op("Mul", x, g.const(np.float32(0.5)))
        return g.op("Mul", half_x, g.op("Add", t, g.const(np.float32(1.0))))
    raise ConfigError(f"{where}: activation {name!r} has no ONNX export")


def dense(g: Graph, layer, x: str) -> str:
    z = g.op("MatMul", x, g.const(_w(layer.kernel), "kernel"))
    if layer.use_bias:
        z = g.op("Add", z, g.const(_w(layer.bias), "bias"))
    return activation(g, layer.activation, z, f"layer {layer.name!r}")


def conv2d(g: Graph, layer, x: str) -> str:
    top, bottom, left, right = layer.geometry.pad
    inputs = [x, g.const(_w(layer.kernel), "kernel")]
    if layer.use_bias:
        inputs.append(g.const(_w(layer.bias), "bias"))
    z = g.op(
        "Conv", *inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
        dilations=list(layer.dilation), pads=[top, left, bottom, right],
    )  # fmt: skip
    return activation(g, layer.activation, z, f"layer {layer.name!r}")


def pool(op_type: str, **extra):
    def convert(g: Graph, layer, x: str) -> str:
        top, bottom, left, right = layer.geometry.pad
        return g.op(
            op_type, x, kernel_shape=list(layer.pool_size), strides=list(layer.strides),
            pads=[top, left, bottom, right], **extra,
        )  # fmt: skip

    return convert


def batch_norm(g: Graph, layer, x: str) -> str:
    """y = x * scale + shift per channel, scale = gamma / sqrt(var + eps)."""
    var = backend.to_numpy(layer.moving_variance).astype(np.float64)
    mean = backend.to_numpy(layer.moving_mean).astype(np.float64)
    scale = 1.0 / np.sqrt(var + layer.epsilon)
    if layer.scale:
        scale = scale * _w(layer.gamma)
    shift = -mean * scale + (_w(layer.beta) if layer.center else 0.0)
    shape = (-1,) if len(layer.input_shape) == 1 else (-1, *[1] * (len(layer.input_shape) - 1))
    y = g.op("Mul", x, g.const(scale.reshape(shape), "bn_scale"))
    return g.op("Add", y, g.const(shift.reshape(shape), "bn_shift"))


def reshape(g: Graph, layer, x: str) -> str:
    return g.op("Reshape", x, g.const(np.array([0, *layer.output_shape], dtype=np.int64)))


def embedding(g: Graph, layer, x: str) -> str:
    ids = g.op("Cast", x, to=7)  # INT64
    return g.op("Gather", g.const(_w(layer.embeddings), "embeddings"), ids, axis=0)


def global_avg_pool(g: Graph, layer, x: str) -> str:
    return g.op("Flatten", g.op("GlobalAveragePool", x), axis=1)


def activation_layer(g: Graph, layer, x: str) -> str:
    return activation(g, layer.activation, x, f"layer {layer.name!r}")


def identity(g: Graph, layer, x: str) -> str:
    return x


def flatten(g: Graph, layer, x: str) -> str:
    return g.op("Flatten", x, axis=1)


def bidirectional(g: Graph, layer, x: str) -> str:
    from bptrain.export.onnx_recurrent import recurrent, reverse_time

    yf = recurrent(g, layer.forward_layer, x, layer.name)
    yb = recurrent(g, layer.backward_layer, x, layer.name)
    if layer.return_sequences:
        yb = reverse_time(g, yb, axis=1)
    if layer.merge_mode == "concat":
        return g.op("Concat", yf, yb, axis=-1)
    if layer.merge_mode == "mul":
        return g.op("Mul", yf, yb)
    y = g.op("Add", yf, yb)
    return g.op("Mul", y, g.const(np.float32(0.5))) if layer.merge_mode == "ave" else y


def sequential(g: Graph, layer, x: str) -> str:
    for part in layer.layers:
        x = (
            CONVERTERS[type(part).__name__](g, part, x)
            if type(part).__name__ in CONVERTERS
            else None
        )
        if x is None:
            raise ConfigError(f"layer {part.name!r} ({type(part).__name__}) has no ONNX export")
    return x


def _recurrent(g: Graph, layer, x: str) -> str:
    from bptrain.export.onnx_recurrent import recurrent

    return recurrent(g, layer, x, layer.name)


CONVERTERS = {
    "Dense": dense,
    "Activation": activation_layer,
    "Dropout": identity,
    "BatchNorm": batch_norm,
    "Conv2D": conv2d,
    "MaxPool2D": pool("MaxPool"),
    "AvgPool2D": pool("AveragePool", count_include_pad=0),
    "GlobalAvgPool2D": global_avg_pool,
    "Flatten": flatten,
    "Reshape": reshape,
    "Embedding": embedding,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Bidirectional": bidirectional,
    "Sequential": sequential,
}
