"""The compiled model: a built network with its loss and optimizer, and the one training step.

    network = Sequential([Dense(32, activation="relu"), Dense(2, activation="softmax")])
    network.build(input_shape=(2,), rng=rng)
    model = Model(network, loss="sparse_categorical_crossentropy", optimizer="adam")
    loss = model.train_step(x, y)           # compute_gradients, then apply_gradients
    probabilities = model.predict(x)

``Model`` packs every parameter of the network into one flat value buffer and one flat
gradient buffer (``backend.xp`` arrays; each parameter a view of them), so zeroing gradients and
the optimizer's update are a few large array operations. A final softmax (sigmoid) with a
categorical (binary) cross-entropy is fused: the network runs without its last activation and
the loss is computed from the logits with log-sum-exp, exact and never log(0).

The loss and the optimizer are optional: a model without a loss still runs ``forward`` and
``backward`` from a given dL/d(outputs) (a pipeline stage before the last), and one without an
optimizer computes gradients for someone else to apply.
"""

from __future__ import annotations

import numpy as np

from bptrain.nn import backend, losses, optimizers, regularizers
from bptrain.nn.parameter import ParameterList, flat_views


class Model:
    """``network`` (a built ``Sequential``) compiled with ``loss`` and ``optimizer`` (names,
    ``{"type": ...}`` mappings or instances; either may be None). ``input_grad``: whether
    ``backward`` returns dL/dx (a model trained on its own needs none, and its first trainable
    layer then skips that GEMM)."""

    def __init__(self, network, loss=None, optimizer=None, input_grad: bool = False):
        if not network.built:
            raise ValueError("build the network first: network.build(input_shape, rng)")
        self.network = network
        network.needs_input_grad = input_grad
        self.loss = losses.get(loss) if loss is not None else None
        self.optimizer = optimizers.get(optimizer) if optimizer is not None else None
        fused = self.loss.fused_with(network.output_activation) if loss is not None else None
        # step_loss is the loss as computed: the from-logits twin when ``fused`` (then forward
        # leaves out the last activation); training, evaluation and gradient checks use it.
        self.step_loss = fused or self.loss
        self.fused = fused is not None
        # The last compute_gradients batch's outputs (logits where ``fused``), which a trainer
        # reads for training metrics instead of running the batch forward again.
        self.last_outputs = None
        self._backward_writes_all = all(
            layer.writes_grads for layer in network.runs if layer.parameters()
        )
        self._pack()
        if self.fused:  # a model big enough for compiled kernels fuses its loss too
            self.step_loss.model_size = len(self._params.flat_grad)

    def _pack(self) -> None:
        params = self.network.parameters()
        total = sum(p.size for p in params)
        flat_value = backend.xp.empty(total, dtype=self.network.dtype)
        flat_grad = backend.xp.zeros(total, dtype=self.network.dtype)
        for p, value, grad in zip(
            params, flat_views(flat_value, params), flat_views(flat_grad, params), strict=True
        ):
            value[...] = p.value
            p.value, p.grad = value, grad
        self._params = ParameterList(params, flat_value, flat_grad)

    def cast(self, dtype) -> None:
        """Convert every parameter and buffer to ``dtype`` (float64 for gradient checks)."""
        self.network.cast(dtype)
        self._pack()

    def parameters(self) -> ParameterList:
        """The network's parameters, backed by the flat buffers (``flat_value``, ``flat_grad``)."""
        return self._params

    def zero_grad(self) -> None:
        self._params.flat_grad.fill(0)
        for p in self._params:
            p.fresh = True

    def _fresh_grads(self) -> None:
        """``zero_grad`` before a backward, without the pass over the buffer where every
        trainable layer writes its gradients through ``kernels.grads`` (``writes_grads``):
        they write a fresh gradient instead of adding to it, so its old values never count."""
        if not self._backward_writes_all:
            return self.zero_grad()
        for p in self._params:
            p.fresh = True

    def penalty(self) -> float:
        """The parameters' regularization penalties, added to the loss."""
        return regularizers.penalty(self._params)

    # -- computing ------------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """The network's outputs as the loss takes them: logits where the loss is ``fused``."""
        return self.network.forward(x, training, logits=self.fused)

    def backward(self, dy, scale: float = 1.0):
        """Add into every parameter's ``grad`` the gradient for ``dy``, dL/d(``forward``'s
        outputs), and ``scale`` times the penalties' gradient. Returns dL/dx, or None unless
        the model was made with ``input_grad``."""
        dx = self.network.backward(dy)
        regularizers.add_gradients(self._params, scale)
        return dx

    def compute_gradients(self, x, y, scale: float = 1.0, sample_weight=None) -> float:
        """Forward, loss (plus penalties) and backward on one batch; gradients are zeroed first.

        Returns the loss, and keeps the batch's outputs in ``last_outputs``. Nothing is updated,
        so a trainer can check or sum gradients before ``apply_gradients``. ``scale``
        multiplies the loss, and so every gradient: a data-parallel worker passes its slice's
        share of the global batch (slice size / batch size), so that the workers' losses and
        gradients sum to the global batch's. ``sample_weight`` (N,) weighs each sample's loss.
        """
        out = self.last_outputs = self.forward(x, training=True)
        value = self.step_loss.forward(out, y, sample_weight)
        value += self.penalty()
        self._fresh_grads()
        dy = self.step_loss.backward()
        self.backward(dy if scale == 1.0 else dy * dy.dtype.type(scale), scale)
        return value if scale == 1.0 else value * scale

    def apply_gradients(self) -> None:
        """One optimizer update of every parameter with its ``grad``."""
        self.optimizer.step(self._params)

    def train_step(self, x, y) -> float:
        """One gradient-descent step on a batch; returns the batch loss before the update."""
        value = self.compute_gradients(x, y)
        self.apply_gradients()
        return value

    # -- inference ------------------------------------------------------------------------------
    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Outputs for x (N, ...) in batches, activations applied (probabilities for a
        classifier), as a NumPy array."""
        outs = [
            backend.to_numpy(self.network.forward(backend.asarray(x[i : i + batch_size])))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs) if outs else np.empty((0,))

    def evaluate(self, x, y, batch_size: int = 256, sample_weight=None) -> tuple[float, np.ndarray]:
        """(mean loss including penalties, outputs) on x (N, ...) and y (N, ...), computed as
        in training (``step_loss``, weighted by ``sample_weight`` (N,) as ``losses`` weighs);
        outputs as ``predict`` gives them."""
        starts = range(0, len(x), batch_size)
        return self.summed(self.evaluate_batches(x, y, starts, batch_size, sample_weight), len(x))

    def evaluate_batches(self, x, y, starts, batch_size: int, sample_weight=None) -> list:
        """[(loss summed over the batch, outputs)] of the batches that begin at ``starts``."""
        last = self.network.runs[-1].activation if self.fused else None
        batches = []
        for start in starts:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            wb = None if sample_weight is None else sample_weight[start : start + batch_size]
            out = self.forward(backend.asarray(xb))
            loss = self.step_loss.forward(out, backend.asarray(yb), wb) * len(xb)
            batches.append((loss, backend.to_numpy(out if last is None else last.forward(out))))
        return batches

    def summed(self, batches: list, n: int) -> tuple[float, np.ndarray]:
        """``evaluate``'s result from all of its ``evaluate_batches``, in order, for n samples."""
        total = 0.0
        for loss, _ in batches:
            total += loss
        mean = total / max(n, 1) + self.penalty()
        outs = [out for _, out in batches]
        return float(mean), (np.concatenate(outs) if outs else np.empty((0,)))

    def summary(self) -> str:
        """The network's summary, and a line for a loss computed from the logits."""
        text = self.network.summary()
        if self.fused:
            act = self.network.output_activation
            text += f"\nFused: {act} + {self.loss.name}: the loss from the logits"
        return text
