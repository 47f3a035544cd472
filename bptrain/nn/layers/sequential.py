"""Sequential: a stack of layers that is itself a layer. It computes and names; training it is
the compiled model's business (``bptrain.nn.model.Model``)."""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend, fusion
from bptrain.nn.layer import Layer, snake_case
from bptrain.nn.parameter import ParameterList
from bptrain.nn.summary import summary


class Sequential(Layer):
    """Layers applied in order. ``build`` names the layers (``dense``, ``dense_1``, ...) and
    infers every shape from the input shape.

    ``layers`` are the layers as written; ``runs`` the layers that compute, after
    ``fusion.fuse`` (or ``layers`` itself with ``fuse=False``). Weights keep the names of
    ``layers``; the summary lists what was fused.
    """

    def __init__(self, layers=(), name: str | None = None, fuse: bool = True):
        super().__init__(name)
        self.layers: list[Layer] = list(layers)
        self.fuse = fuse
        self.runs: list[Layer] = self.layers

    def add(self, layer: Layer) -> None:
        if self.built:
            raise RuntimeError("cannot add layers to a built model")
        self.layers.append(layer)

    # -- building -------------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=np.float32):
        """Build every layer for per-sample ``input_shape``; ``rng`` seeds weights and dropout."""
        if not self.layers:
            raise ValueError("a Sequential model needs at least one layer")
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.dtype = dtype
        used: dict[str, int] = {}
        shape = self.input_shape = tuple(input_shape)
        for layer in self.layers:
            if layer.name is None:
                base = snake_case(type(layer).__name__)
                layer.name = base if base not in used else f"{base}_{used[base]}"
                used[base] = used.get(base, 0) + 1
            layer.dtype, layer.input_shape = dtype, shape
            try:
                shape = tuple(layer.build(shape, self.rng))
            except ValueError as e:
                raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): {e}") from None
            layer.output_shape, layer.built = shape, True
        self.output_shape, self.built = shape, True
        self.runs = fusion.fuse(self.layers) if self.fuse else list(self.layers)
        self._first_trainable = next(
            (i for i, layer in enumerate(self.runs) if layer.parameters()), len(self.runs)
        )
        return shape

    def cast(self, dtype) -> None:
        for layer in self.runs:  # a fused layer casts the layers it joins
            layer.cast(dtype)
        self.dtype = dtype

    # -- computing ------------------------------------------------------------------------------
    def forward(self, x, training: bool = False, logits: bool = False):
        """Run all layers; with ``logits=True`` the last layer's activation is left out."""
        last = len(self.runs) - 1
        for i, layer in enumerate(self.runs):
            if i == last and logits and layer.activation is not None:
                x = layer.forward(x, training, activate=False)
            else:
                x = layer.forward(x, training)
        return x

    def backward(self, dy):
        """Back-propagate ``dy``; returns dL/dx, or None when ``needs_input_grad`` is False
        (then layers below the first trainable one are skipped altogether)."""
        stop = 0 if self.needs_input_grad else self._first_trainable
        if self._first_trainable < len(self.runs):  # set every call: the flag may change
            self.runs[self._first_trainable].needs_input_grad = self.needs_input_grad
        for layer in reversed(self.runs[stop:]):
            dy = layer.backward(dy)
        return dy if self.needs_input_grad else None

    __call__ = forward

    @property
    def output_activation(self) -> str | None:
        """The name of the last layer's activation (``"softmax"``, ...) or None."""
        act = self.runs[-1].activation if self.runs else None
        return None if act is None or act.name == "linear" else act.name

    # -- parameters and buffers -----------------------------------------------------------------
    def parameters(self) -> ParameterList:
        return ParameterList(p for layer in self.layers for p in layer.parameters())

    def named_parameters(self, prefix: str = ""):
        for layer in self.layers:
            yield from layer.named_parameters(f"{prefix}{layer.name}/")

    def state(self) -> dict:
        return {f"{layer.name}/{k}": v for layer in self.layers for k, v in layer.state().items()}

    def load_state(self, state: dict) -> None:
        for layer in self.layers:
            prefix = f"{layer.name}/"
            own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if own:
                layer.load_state(own)

    def rng_state(self) -> dict:
        """The state of the generator that drives dropout (JSON-ready; see ``set_rng_state``)."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        """Continue the dropout generator from ``rng_state()``'s ``state``."""
        self.rng.bit_generator.state = state

    def weights(self) -> dict:
        """Every parameter and buffer by its path (``dense/kernel``), as NumPy arrays."""
        return {name: backend.to_numpy(v) for name, v in self._arrays().items()}

    def load_weights(self, weights: dict) -> None:
        """Copy ``weights()`` arrays into this built model; names and shapes must match."""
        targets = self._arrays()
        names, given = set(targets), set(weights)
        if given != names:
            raise ValueError(
                f"weights do not match the model: missing {sorted(names - given)}, "
                f"unexpected {sorted(given - names)}"
            )
        for name, target in targets.items():
            value = weights[name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"weight {name!r} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(target.shape)}"
                )
            target[...] = backend.asarray(value, dtype=target.dtype)

    def _arrays(self) -> dict:
        """Every parameter's value and every buffer, by its path."""
        return {name: p.value for name, p in self.named_parameters()} | self.state()

    def count_params(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- description ----------------------------------------------------------------------------
    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts, and what was fused."""
        return summary(self)

    def config(self):
        return {"layers": len(self.layers)}
