"""The layer contract every part of the core follows.

``build(input_shape, rng) -> output_shape`` creates parameters once the input shape is known
(shapes exclude the batch axis); ``forward(x, training)`` returns ``y`` and caches what
``backward`` needs; ``backward(dy)`` returns ``dx`` and adds into each parameter's ``grad``.
"""

from __future__ import annotations

import re

import numpy as np

from bptrain.nn import activations, initializers, regularizers
from bptrain.nn.parameter import Parameter


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Layer:
    """Base class. Subclasses set parameters with ``add_parameter`` inside ``build``.

    A layer with an ``activation`` applies it last; ``forward(x, training, activate=False)``
    returns the pre-activation instead, which is how a final softmax or sigmoid is fused into a
    cross-entropy loss.
    """

    activation: activations.Activation | None = None
    # A model sets this False on its first trainable layer: nothing upstream needs dL/dx, and
    # skipping it saves a GEMM (and col2im for a convolution). Such a backward returns None.
    needs_input_grad: bool = True
    # True where backward writes every gradient of the layer's own through ``kernels.grads``
    # (which treat a ``fresh`` gradient as zeros), so a model may skip zeroing them.
    writes_grads: bool = False

    def __init__(self, name: str | None = None):
        self.name = name
        self.built = False
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        self.dtype = np.float32
        self.params: dict[str, Parameter] = {}

    # -- building -------------------------------------------------------------------------------
    def build(self, input_shape: tuple, rng: np.random.Generator) -> tuple:
        """Create parameters for per-sample ``input_shape``; return the per-sample output shape."""
        return tuple(input_shape)

    def add_parameter(self, name, shape, initializer, rng, regularizer=None) -> Parameter:
        value = initializers.get(initializer)(shape, rng, self.dtype)
        p = Parameter(value, name, regularizers.get(regularizer))
        self.params[name] = p
        return p

    # -- computing ------------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def _activate(self, z, activate: bool, a=None):
        """Apply the activation to ``z`` (caching both for backward) unless told not to; ``a``:
        the activation's output, where a kernel computed it already."""
        self._z = z
        self._activated = activate and self.activation is not None
        if a is None:
            a = self.activation.forward(z) if self._activated else z
        self._a = a
        return a

    def _activation_backward(self, dy):
        if self._activated:
            return self.activation.backward(dy, self._z, self._a)
        return dy

    # -- parameters and buffers -----------------------------------------------------------------
    def parameters(self) -> list[Parameter]:
        return list(self.params.values())

    def named_parameters(self, prefix: str = ""):
        for key, p in self.params.items():
            yield prefix + key, p

    def state(self) -> dict:
        """Non-trainable buffers (e.g. BatchNorm running statistics), by name."""
        return {}

    def load_state(self, state: dict) -> None:
        for key, value in state.items():
            self.state()[key][...] = value

    def cast(self, dtype) -> None:
        """Convert parameters and buffers to ``dtype`` (float64 for gradient checks)."""
        self.dtype = dtype
        for p in self.parameters():
            p.value = p.value.astype(dtype)
            p.grad = p.grad.astype(dtype)

    def config(self) -> dict:
        """The constructor arguments that matter for a summary."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Composite(Layer):
    """A layer made of other layers, ``parts`` (a wrapper such as Bidirectional, a fused
    layer): their parameters, named under each part's name, and cast with them."""

    @property
    def parts(self) -> tuple:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return [p for part in self.parts for p in part.parameters()]

    def named_parameters(self, prefix: str = ""):
        for part in self.parts:
            yield from part.named_parameters(f"{prefix}{part.name}/")

    def cast(self, dtype) -> None:
        self.dtype = dtype
        for part in self.parts:
            part.cast(dtype)
