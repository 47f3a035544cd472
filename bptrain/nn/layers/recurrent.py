"""What SimpleRNN, LSTM and GRU share as layers: Keras' arguments and weights. Their forward
pass over the time steps and backpropagation through time are ``Unrolled``'s.

Shapes: inputs x (N, T, D); outputs (N, T, units) with ``return_sequences``, else (N, units).

The weight layout is Keras': ``kernel`` (D, k*units), ``recurrent_kernel`` (units, k*units) and
``bias`` (k*units,), the k gate blocks side by side in Keras' order, so weights carry over to
and from Keras (and, with a reorder, PyTorch).
"""

from __future__ import annotations

from bptrain.nn import activations
from bptrain.nn.kernels.recurrent import GateActivations
from bptrain.nn.kernels.scratch import Scratch
from bptrain.nn.layers.unrolled import Unrolled


class Recurrent(Unrolled):
    """Base class of SimpleRNN, LSTM and GRU: the arguments (``truncate_bptt=k``: backprop
    through at most k steps, see ``unrolled``), the weights, and the gates' activations. A layer
    sets ``gates`` (k) and implements ``_gate_blocks``, ``_steps`` and ``_backprop``
    (``Unrolled``)."""

    def __init__(
        self,
        units: int,
        activation: str | None = "tanh",
        use_bias: bool = True,
        return_sequences: bool = False,
        go_backwards: bool = False,
        kernel_initializer: str | dict = "glorot_uniform",
        recurrent_initializer: str | dict = "orthogonal",
        bias_initializer: str | dict = "zeros",
        kernel_regularizer: str | dict | None = None,
        recurrent_regularizer: str | dict | None = None,
        bias_regularizer: str | dict | None = None,
        truncate_bptt: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"{type(self).__name__} units must be a positive integer, got {units}")
        if truncate_bptt is not None and (not isinstance(truncate_bptt, int) or truncate_bptt < 1):
            raise ValueError(
                f"truncate_bptt must be a positive integer or null, got {truncate_bptt}"
            )
        self.units = units
        # Not ``self.activation``: a Model would try to fuse that into the loss.
        self.cell_activation = _elementwise(activation)
        self.use_bias = use_bias
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.recurrent_regularizer = recurrent_regularizer
        self.bias_regularizer = bias_regularizer
        self.truncate_bptt = truncate_bptt
        self._scratch = Scratch()

    def _gate_blocks(self) -> list[activations.Activation]:
        """The activation of each of the k gate blocks, in Keras' order."""
        raise NotImplementedError

    # -- building -------------------------------------------------------------------------------
    def build(self, input_shape, rng):
        if len(input_shape) != 2:
            raise ValueError(
                f"expects inputs of shape (time, features) per sample, got {tuple(input_shape)}; "
                "add a Reshape (e.g. target_shape: [28, 28]) or an Embedding before it"
            )
        k, u = self.gates, self.units
        self.kernel = self.add_parameter(
            "kernel",
            (input_shape[-1], k * u),
            self.kernel_initializer,
            rng,
            self.kernel_regularizer,
        )
        self.recurrent_kernel = self.add_parameter(
            "recurrent_kernel",
            (u, k * u),
            self.recurrent_initializer,
            rng,
            self.recurrent_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_parameter(
                "bias", self._bias_shape(), self.bias_initializer, rng, self.bias_regularizer
            )
        self._gates = GateActivations(self._gate_blocks(), u)
        return (input_shape[0], u) if self.return_sequences else (u,)

    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    # -- description ----------------------------------------------------------------------------
    def config(self):
        cfg = {"units": self.units, "return_sequences": self.return_sequences}
        if self.go_backwards:
            cfg["go_backwards"] = True
        if self.truncate_bptt is not None:
            cfg["truncate_bptt"] = self.truncate_bptt
        return cfg


class GatedRecurrent(Recurrent):
    """A recurrent layer with gates (LSTM, GRU): adds their ``recurrent_activation``. The other
    arguments are ``Recurrent``'s, passed on (config validation follows ``**kwargs`` there)."""

    def __init__(self, *args, recurrent_activation: str | None = "sigmoid", **kwargs):
        super().__init__(*args, **kwargs)
        self.recurrent_activation = _elementwise(recurrent_activation)


def _elementwise(name: str | None) -> activations.Activation:
    act = activations.get(name)
    if isinstance(act, activations.Softmax):
        raise ValueError("softmax is not elementwise; recurrent layers need tanh, sigmoid, ...")
    return act
