"""Bidirectional: run a recurrent layer forwards and a copy of it backwards, and merge."""

from __future__ import annotations

import copy

from bptrain.nn import backend
from bptrain.nn.layer import Composite, Layer
from bptrain.nn.layers.recurrent import Recurrent

MERGE_MODES = ("concat", "sum", "ave", "mul")


class Bidirectional(Composite):
    """x: (N, T, D) -> merge(forward(x), backward(x)) as Keras' ``Bidirectional``.

    ``layer`` is an unbuilt recurrent layer or a mapping such as ``{type: LSTM, units: 64}``.
    The backward layer is a copy of it with ``go_backwards`` flipped; with ``return_sequences``
    its outputs are reversed again so that both directions line up in time. ``merge_mode``:
    concat (last axis 2*units), sum, ave or mul. Parameters are named ``forward/kernel``,
    ``backward/kernel``, ...
    """

    def __init__(self, layer, merge_mode: str = "concat", name: str | None = None):
        super().__init__(name)
        if isinstance(layer, dict):
            layer = _from_mapping(layer)
        if not isinstance(layer, Recurrent):
            raise ValueError(
                f"Bidirectional wraps a SimpleRNN, LSTM or GRU, got {type(layer).__name__}"
            )
        if layer.built:
            raise ValueError("Bidirectional needs an unbuilt layer to copy")
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                f"merge_mode must be one of {', '.join(MERGE_MODES)}, got {merge_mode!r}"
            )
        self.forward_layer = layer
        self.backward_layer = copy.deepcopy(layer)
        self.backward_layer.go_backwards = not layer.go_backwards
        self.forward_layer.name, self.backward_layer.name = "forward", "backward"
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences

    @property
    def parts(self) -> tuple[Recurrent, Recurrent]:
        return self.forward_layer, self.backward_layer

    def build(self, input_shape, rng):
        for layer in self.parts:
            layer.dtype = self.dtype
            shape = layer.build(input_shape, rng)
            layer.input_shape, layer.output_shape, layer.built = tuple(input_shape), shape, True
        if self.merge_mode == "concat":
            return (*shape[:-1], 2 * shape[-1])
        return shape

    def forward(self, x, training=False):
        yf = self.forward_layer.forward(x, training)
        yb = self.backward_layer.forward(x, training)
        if self.return_sequences:
            yb = yb[:, ::-1]
        self._yf, self._yb = yf, yb
        if self.merge_mode == "concat":
            return backend.xp.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "ave":
            return (yf + yb) * 0.5
        return yf * yb

    def backward(self, dy):
        if self.merge_mode == "concat":
            u = dy.shape[-1] // 2
            dyf, dyb = dy[..., :u], dy[..., u:]
        elif self.merge_mode == "sum":
            dyf = dyb = dy
        elif self.merge_mode == "ave":
            dyf = dyb = dy * 0.5
        else:
            dyf, dyb = dy * self._yb, dy * self._yf
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        for layer in self.parts:
            layer.needs_input_grad = self.needs_input_grad
        dxf, dxb = self.forward_layer.backward(dyf), self.backward_layer.backward(dyb)
        return dxf + dxb if self.needs_input_grad else None

    def config(self):
        return {"layer": repr(self.forward_layer), "merge_mode": self.merge_mode}


def _from_mapping(spec: dict) -> Layer:
    from bptrain.nn.layers import LAYERS  # the registry imports this module

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in LAYERS:
        raise ValueError(
            f"Bidirectional layer type must be one of SimpleRNN, LSTM, GRU, got {kind!r}"
        )
    try:
        return LAYERS[kind](**spec)
    except TypeError as e:
        raise ValueError(f"Bidirectional layer {kind}: {e}") from None
