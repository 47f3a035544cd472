"""Sequential: a stack of layers that is itself a layer, and the object users train."""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend, fusion, regularizers
from bptrain.nn.layer import Layer, snake_case
from bptrain.nn.parameter import ParameterList, flat_views


class Sequential(Layer):
    """Layers applied in order. ``build`` names the layers (``dense``, ``dense_1``, ...), infers
    every shape from the input shape, and packs all parameters into one flat value buffer and one
    flat gradient buffer (each parameter a view), so zeroing gradients and optimizer updates are
    single large array operations.

    ``layers`` are the layers as written; ``runs`` the layers that compute, after
    ``fusion.fuse`` (or ``layers`` itself with ``fuse=False``). Weights keep the names of
    ``layers``; the summary lists what was fused.
    """

    # A model trained on its own needs no gradient for its input; check_layer and an enclosing
    # model that has trainable layers below this one set it True.
    needs_input_grad = False

    def __init__(self, layers=(), name: str | None = None, fuse: bool = True):
        super().__init__(name)
        self.layers: list[Layer] = list(layers)
        self.fuse = fuse
        self.runs: list[Layer] = self.layers
        self.loss = None
        self.optimizer = None
        self.step_loss = None
        self.fused = False
        # The last compute_gradients batch's outputs (logits where ``fused``), which a trainer
        # reads for training metrics instead of running the batch forward again.
        self.last_outputs = None
        self._params = ParameterList()

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
        shape = tuple(input_shape)
        self.input_shape = shape
        for layer in self.layers:
            if layer.name is None:
                base = snake_case(type(layer).__name__)
                layer.name = base if base not in used else f"{base}_{used[base]}"
                used[base] = used.get(base, 0) + 1
            layer.dtype = dtype
            layer.input_shape = shape
            try:
                shape = tuple(layer.build(shape, self.rng))
            except ValueError as e:
                raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): {e}") from None
            layer.output_shape = shape
            layer.built = True
        self.output_shape = shape
        self.built = True
        self.runs = fusion.fuse(self.layers) if self.fuse else list(self.layers)
        self._first_trainable = next(
            (i for i, layer in enumerate(self.runs) if layer.parameters()), len(self.runs)
        )
        self._pack()
        return shape

    def _pack(self) -> None:
        params = [p for layer in self.layers for p in layer.parameters()]
        xp = backend.xp
        total = sum(p.size for p in params)
        flat_value = xp.empty(total, dtype=self.dtype)
        flat_grad = xp.zeros(total, dtype=self.dtype)
        for p, value, grad in zip(
            params, flat_views(flat_value, params), flat_views(flat_grad, params), strict=True
        ):
            value[...] = p.value
            p.value, p.grad = value, grad
        self._params = ParameterList(params, flat_value, flat_grad)

    def cast(self, dtype) -> None:
        for layer in self.runs:  # a fused layer casts the layers it joins
            layer.cast(dtype)
        self.dtype = dtype
        self._pack()

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
        if self.built:
            return self._params
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

    def zero_grad(self) -> None:
        if self._params.flat_grad is not None:
            self._params.flat_grad.fill(0)
        else:
            for p in self._params:
                p.zero_grad()

    def weights(self) -> dict:
        """Every parameter and buffer by its path (``dense/kernel``), as NumPy arrays."""
        out = {name: backend.to_numpy(p.value) for name, p in self.named_parameters()}
        out.update({name: backend.to_numpy(v) for name, v in self.state().items()})
        return out

    def load_weights(self, weights: dict) -> None:
        """Copy ``weights()`` arrays into this built model; names and shapes must match."""
        own = dict(self.named_parameters())
        buffers = self.state()
        expected = set(own) | set(buffers)
        if set(weights) != expected:
            missing = sorted(expected - set(weights))
            extra = sorted(set(weights) - expected)
            raise ValueError(
                f"weights do not match the model: missing {missing}, unexpected {extra}"
            )
        for name, target in [*((n, p.value) for n, p in own.items()), *buffers.items()]:
            value = weights[name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"weight {name!r} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(target.shape)}"
                )
            target[...] = backend.asarray(value, dtype=target.dtype)

    def count_params(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- training -------------------------------------------------------------------------------
    def compile(self, loss, optimizer) -> None:
        """Choose the loss and optimizer ``train_step`` uses (names or instances).

        A final softmax (sigmoid) with a categorical (binary) cross-entropy is fused: the loss is
        computed from the logits with log-sum-exp, which is exact and never takes log(0).
        """
        from bptrain.nn import losses, optimizers

        self.loss = losses.get(loss)
        self.optimizer = optimizers.get(optimizer)
        fused = self.loss.fused_with(self.output_activation)
        # step_loss is the loss as computed: the from-logits twin when ``fused`` (then forward
        # runs with logits=True); evaluation and gradient checks use the same pair.
        self.step_loss = fused or self.loss
        self.fused = fused is not None

    def compute_gradients(self, x, y, scale: float = 1.0, sample_weight=None) -> float:
        """Forward, loss (plus penalties) and backward on one batch; gradients are zeroed first.

        Returns the loss value, and keeps the batch's outputs in ``last_outputs``. The optimizer
        is not stepped, so a trainer can inspect or average gradients before
        ``optimizer.step(model.parameters())``. ``scale`` multiplies the loss,
        and so every gradient: a data-parallel worker passes its slice's share of the global
        batch (slice size / batch size), so that the workers' losses and gradients sum to the
        global batch's. ``sample_weight`` (N,) weighs each sample's loss (see ``losses``).
        """
        out = self.last_outputs = self.forward(x, training=True, logits=self.fused)
        value = self.step_loss.forward(out, y, sample_weight)
        params = self.parameters()
        value += regularizers.penalty(params)
        self.zero_grad()
        dy = self.step_loss.backward()
        self.backward(dy if scale == 1.0 else dy * dy.dtype.type(scale))
        regularizers.add_gradients(params, scale)
        return value if scale == 1.0 else value * scale

    def train_step(self, x, y) -> float:
        """One gradient-descent step on a batch; returns the batch loss before the update."""
        value = self.compute_gradients(x, y)
        self.optimizer.step(self.parameters())
        return value

    def predict(self, x, batch_size: int = 256):
        """Inference outputs for ``x`` in batches (activations applied, e.g. probabilities)."""
        outs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return backend.xp.concatenate(outs) if outs else self.forward(x)

    # -- description ----------------------------------------------------------------------------
    def summary(self) -> str:
        """A table of layers, output shapes and parameter counts."""
        from bptrain.nn.summary import summary

        return summary(self)

    def config(self):
        return {"layers": len(self.layers)}
