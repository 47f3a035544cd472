"""Dense and Activation."""

from __future__ import annotations

from bptrain.nn import activations
from bptrain.nn.kernels import bias_relu, grads, second_core
from bptrain.nn.layer import Layer


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis.

    x: (N, ..., in_features) -> y: (N, ..., units); kernel (in_features, units), bias (units,).
    """

    writes_grads = True

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str | dict = "glorot_uniform",
        bias_initializer: str | dict = "zeros",
        kernel_regularizer: str | dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        if units < 1:
            raise ValueError(f"Dense units must be positive, got {units}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer

    def build(self, input_shape, rng):
        self.kernel = self.add_parameter(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            rng,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_parameter("bias", (self.units,), self.bias_initializer, rng)
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False, activate=True):
        self._x = x
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        z = second_core.matmul(x2, self.kernel)  # x @ W (on two cores within ``sharing``)
        self._one_pass = activate and x.ndim == 2 and bias_relu.fits(self, z)
        if self._one_pass:  # z += b; a = max(z, 0), in one compiled pass
            return self._activate(z, activate, bias_relu.bias_relu(z, self.bias.value))
        if self.use_bias:
            z += self.bias.value
        if x.ndim != 2:
            z = z.reshape(*x.shape[:-1], self.units)
        return self._activate(z, activate)

    def backward(self, dy):
        dz = bias_relu.relu_bias_backward(dy, self._a, self.bias) if self._one_pass else None
        bias_done = dz is not None  # dz = dy * (a > 0) and the bias gradient, in one pass
        if not bias_done:
            dz = self._activation_backward(dy)
        x = self._x
        if dz.ndim != 2:
            dz = dz.reshape(-1, self.units)
            x = x.reshape(-1, x.shape[-1])
        if not second_core.weight_gradient(self.kernel, x, dz):  # (two cores: see there)
            grads.add_matmul(self.kernel, x.T, dz)  # self.kernel.grad += x.T @ dz
        if self.use_bias and not bias_done:
            grads.add_row_sums(self.bias, dz)  # self.bias.grad += dz.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return second_core.matmul_t(dz, self.kernel).reshape(self._x.shape)  # dz @ W.T

    def config(self):
        return {"units": self.units, "activation": self.activation.name}


class Activation(Layer):
    """An activation function as a layer of its own: any shape in, same shape out."""

    def __init__(self, activation: str, name: str | None = None):
        super().__init__(name)
        self.activation = activations.get(activation)

    def forward(self, x, training=False, activate=True):
        return self._activate(x, activate)

    def backward(self, dy):
        return self._activation_backward(dy)

    def config(self):
        return {"activation": self.activation.name}
