"""The size of a model from its config alone, before ``build`` allocates anything.

Per layer: its parameters, and the values per sample that a training step keeps for it (the
output, its pre-activation and its gradient, and the layer's own caches: a convolution's im2col
columns, a recurrent layer's gates at every time step). The shape arithmetic mirrors each
layer's ``build``; tests/config/test_footprint.py holds the parameter counts and output shapes
to the built models'. A layer whose input does not fit it ends the walk: ``build`` says why.

    layers = layer_footprints(config.model.layers, input_shape=(1, 28, 28))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

KEPT_PER_OUTPUT = 3  # output, pre-activation (or cache), gradient


@dataclass(frozen=True)
class LayerFootprint:
    """``path``: the key path of the layer's entry, e.g. ("model", "layers", 2);
    ``values``: values per sample a training step keeps for it."""

    path: tuple
    type: str
    input_shape: tuple
    output_shape: tuple
    params: int
    values: int


def layer_footprints(
    specs: list[dict], input_shape: tuple, path: tuple = ("model", "layers")
) -> list[LayerFootprint]:
    """One entry per layer (nested ones inside a Sequential each have their own) until the
    end, or until a layer whose shape does not fit or whose type is unknown here."""
    out, shape = [], tuple(input_shape)
    for i, spec in enumerate(specs):
        if spec["type"] == "Sequential":
            inner = layer_footprints(spec["layers"], shape, (*path, i, "layers"))
            out += inner
            if len(inner) < len(spec["layers"]):
                break
            shape = inner[-1].output_shape if inner else shape
            continue
        rule = RULES.get(spec["type"])
        found = rule(spec, shape) if rule is not None else None
        if found is None:
            break
        output, params, cached = found
        kept = 0 if spec["type"] in VIEWS else KEPT_PER_OUTPUT * math.prod(output)
        out.append(LayerFootprint((*path, i), spec["type"], shape, output, params, kept + cached))
        shape = output
    return out


# -- one rule per layer type: (spec, input shape) -> (output shape, parameters, cached values)
# or None when the input does not fit.
Rule = Callable[[dict, tuple], tuple | None]
VIEWS = ("Flatten", "Reshape")  # their outputs are views of their inputs


def _dense(spec, shape):
    if not shape:
        return None
    units = spec["units"]
    return (*shape[:-1], units), shape[-1] * units + units * bool(spec["use_bias"]), 0


def _same(spec, shape):
    return shape, 0, 0


def _flatten(spec, shape):
    return (math.prod(shape),), 0, 0


def _reshape(spec, shape):
    target, size = list(spec["target_shape"]), math.prod(shape)
    known = math.prod(d for d in target if d != -1)
    if target.count(-1) > 1 or known < 1 or size % known:
        return None
    resolved = tuple(size // known if d == -1 else d for d in target)
    return (resolved, 0, 0) if math.prod(resolved) == size else None


def _conv2d(spec, shape):
    if len(shape) != 3:
        return None
    c, h, w = shape
    kh, kw = _pair(spec["kernel_size"])
    out = _windows((h, w), (kh, kw), _pair(spec["strides"]), _pair(spec["dilation"]), spec)
    if out is None:
        return None
    f = spec["filters"]
    params = f * c * kh * kw + f * bool(spec["use_bias"])
    columns = c * kh * kw * out[0] * out[1]
    return (f, *out), params, 2 * columns + kw * c * h * out[1]  # columns, their gradient, work


def _pool(spec, shape):
    if len(shape) != 3:
        return None
    size = _pair(spec["pool_size"])
    strides = _pair(spec["strides"] if spec["strides"] is not None else spec["pool_size"])
    out = _windows(shape[1:], size, strides, (1, 1), spec)
    return None if out is None else ((shape[0], *out), 0, shape[0] * out[0] * out[1])


def _global_pool(spec, shape):
    return ((shape[0],), 0, 0) if len(shape) == 3 else None


def _batch_norm(spec, shape):
    if len(shape) not in (1, 3):
        return None
    gamma_beta = shape[0] * (bool(spec["scale"]) + bool(spec["center"]))
    return shape, gamma_beta, math.prod(shape)  # plus the normalized input


def _embedding(spec, shape):
    return (*shape, spec["output_dim"]), spec["input_dim"] * spec["output_dim"], 0


GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _recurrent(spec, shape):
    if len(shape) != 2:
        return None
    (t, d), u, k = shape, spec["units"], GATES[spec["type"]]
    bias = 0
    if spec["use_bias"]:
        bias = 2 * k * u if spec["type"] == "GRU" and spec.get("reset_after", True) else k * u
    out = (t, u) if spec["return_sequences"] else (u,)
    return out, (d + u) * k * u + bias, t * u * (2 * k + 2)  # gates and states of every step


def _bidirectional(spec, shape):
    inner = RULES[spec["layer"]["type"]](spec["layer"], shape)
    if inner is None:
        return None
    out, params, cached = inner
    if spec["merge_mode"] == "concat":
        out = (*out[:-1], 2 * out[-1])
    return out, 2 * params, 2 * (cached + KEPT_PER_OUTPUT * math.prod(inner[0]))


RULES: dict[str, Rule] = {
    "Dense": _dense,
    "Activation": _same,
    "Dropout": _same,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Conv2D": _conv2d,
    "MaxPool2D": _pool,
    "AvgPool2D": _pool,
    "GlobalAvgPool2D": _global_pool,
    "BatchNorm": _batch_norm,
    "Embedding": _embedding,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Bidirectional": _bidirectional,
}


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _windows(in_hw, kernel, strides, dilation, spec) -> tuple[int, int] | None:
    """Output height and width of windows sliding over ``in_hw`` (as ``im2col.Windows``):
    "same" padding gives ceil(size / stride), numbers of zeros pad both sides."""
    padding = spec["padding"]
    out = []
    for size, k, s, d, axis in zip(in_hw, kernel, strides, dilation, (0, 1), strict=True):
        if isinstance(padding, str) and padding.lower() == "same":
            out.append(-(-size // s))
        else:
            pad = 0 if isinstance(padding, str) else _pair(padding)[axis]
            out.append((size + 2 * pad - d * (k - 1) - 1) // s + 1)
    return tuple(out) if min(out) >= 1 else None
