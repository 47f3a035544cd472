"""SimpleRNN, LSTM and GRU as ONNX's RNN, LSTM and GRU operators (one direction each).

Our weights are Keras': kernel (D, k*units) and recurrent_kernel (units, k*units) with the
gate blocks side by side (LSTM i, f, g, o; GRU z, r, h). ONNX wants W (1, k*units, D) and R
(1, k*units, units), the blocks stacked (LSTM in the order i, o, f, c; GRU z, r, h as ours),
and B (1, 2*k*units), the input bias then the recurrent one. A GRU with ``reset_after`` is
ONNX's ``linear_before_reset=1``. Sequences are (N, T, D) here and (T, N, D) there.
"""

from __future__ import annotations

import numpy as np

from bptrain.errors import ConfigError
from bptrain.export.graph import Graph
from bptrain.nn import backend

ONNX_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
LSTM_ORDER = (0, 3, 1, 2)  # Keras' i, f, g, o blocks in ONNX's order i, o, f, c


def reverse_time(g: Graph, x: str, axis: int) -> str:
    """``x`` reversed along ``axis``."""
    starts, ends = np.array([-1]), np.array([np.iinfo(np.int64).min])
    return g.op(
        "Slice", x, g.const(starts), g.const(ends), g.const(np.array([axis])),
        g.const(np.array([-1])),
    )  # fmt: skip


def _blocks(w: np.ndarray, k: int, order) -> np.ndarray:
    """(rows, k*u) with gate blocks side by side -> (1, k*u, rows), blocks in ``order``."""
    parts = np.split(w, k, axis=-1)
    return np.concatenate([parts[i] for i in order], axis=-1).T[None]


def _activation_names(layer, where: str) -> list[str]:
    acts = [layer.cell_activation]
    if layer.gates > 1:
        acts = [layer.recurrent_activation, layer.cell_activation]
        acts += [layer.cell_activation] if layer.gates == 4 else []
    names = []
    for act in acts:
        if act.name not in ONNX_ACTIVATIONS:
            raise ConfigError(
                f"layer {where!r}: a recurrent activation {act.name!r} has no ONNX export "
                f"(export supports {', '.join(ONNX_ACTIVATIONS)})"
            )
        names.append(ONNX_ACTIVATIONS[act.name])
    return names


def _weights(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, R, B) in ONNX's layout."""
    k, u = layer.gates, layer.units
    order = LSTM_ORDER if k == 4 else tuple(range(k))
    kernel = backend.to_numpy(layer.kernel.value).astype(np.float32)
    rec = backend.to_numpy(layer.recurrent_kernel.value).astype(np.float32)
    bias = np.zeros((2, k * u), dtype=np.float32)
    if layer.use_bias:
        b = backend.to_numpy(layer.bias.value).astype(np.float32)
        b = b.reshape(-1, k * u)  # (1 or 2, k*u): the input bias, and a recurrent one
        bias[: len(b)] = b
    bias = np.concatenate([_blocks(bias[i][None], k, order)[0, :, 0] for i in (0, 1)])
    return _blocks(kernel, k, order), _blocks(rec, k, order), bias[None]


def recurrent(g: Graph, layer, x: str, where: str) -> str:
    """The (N, T, units) sequence or (N, units) last state of ``layer`` on x (N, T, D)."""
    op_type = {1: "RNN", 3: "GRU", 4: "LSTM"}[layer.gates]
    names = _activation_names(layer, where)
    w, r, b = _weights(layer)
    xt = g.op("Transpose", x, perm=[1, 0, 2])
    if layer.go_backwards:
        xt = reverse_time(g, xt, axis=0)
    attrs = {"hidden_size": layer.units, "activations": names}
    if op_type == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    inputs = [xt, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")]
    y, y_h = g.op(op_type, *inputs, outputs=2, **attrs)
    if layer.return_sequences:  # Y (T, 1, N, units)
        return g.op("Transpose", g.op("Squeeze", y, g.const(np.array([1]))), perm=[1, 0, 2])
    return g.op("Squeeze", y_h, g.const(np.array([0])))  # Y_h (1, N, units)
